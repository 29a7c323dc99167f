from __future__ import annotations

from django.urls import path

from inventory import views, views_history

app_name = "inventory"

# Each inventory list is /inventory/<plural>/, each object /inventory/<plural>/<id>/.
PLURALS = {
    "team": "teams",
    "aimodel": "models",
    "modelversion": "versions",
    "system": "systems",
    "deployment": "deployments",
    "identity": "identities",
}
DETAIL_VIEWS = {
    "team": views.team_detail,
    "aimodel": views.aimodel_detail,
    "modelversion": views.modelversion_detail,
    "system": views.system_detail,
    "deployment": views.deployment_detail,
    "identity": views.identity_detail,
}

urlpatterns = []
for key, plural in PLURALS.items():
    urlpatterns += [
        path(f"{plural}/", views.object_list, {"key": key}, name=f"{key}_list"),
        path(f"{plural}/new/", views.object_create, {"key": key}, name=f"{key}_create"),
        path(f"{plural}/<int:pk>/", DETAIL_VIEWS[key], name=f"{key}_detail"),
        path(
            f"{plural}/<int:pk>/edit/",
            views.object_edit,
            {"key": key},
            name=f"{key}_edit",
        ),
        path(
            f"{plural}/<int:pk>/delete/",
            views.object_delete,
            {"key": key},
            name=f"{key}_delete",
        ),
    ]
urlpatterns += [
    path(
        f"{PLURALS[key]}/<int:pk>/history/",
        views_history.field_history,
        {"key": key},
        name=f"{key}_history",
    )
    for key in views_history.HISTORY_KEYS
]
urlpatterns += [
    path("lookup/<str:kind>/", views.lookup, name="lookup"),
    path("identities/<int:pk>/bind/", views.identity_bind, name="identity_bind"),
    path(
        "identities/<int:pk>/deployments/<int:deployment_id>/unbind/",
        views.identity_unbind,
        name="identity_unbind",
    ),
    path(
        "deployments/<int:pk>/dependencies/",
        views.dependency_add,
        name="dependency_add",
    ),
    path(
        "deployments/<int:pk>/dependencies/<int:dependency_id>/remove/",
        views.dependency_remove,
        name="dependency_remove",
    ),
]
