from __future__ import annotations

from django.urls import path

from inventory import views_tokens

app_name = "tokens"
urlpatterns = [
    path("", views_tokens.token_list, name="token_list"),
    path("new/", views_tokens.token_issue, name="token_issue"),
    path("<int:pk>/revoke/", views_tokens.token_revoke, name="token_revoke"),
]
