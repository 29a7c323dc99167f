from __future__ import annotations

app_name = "hooks"

urlpatterns: list = []
