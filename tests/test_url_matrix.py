"""Role x URL x foreign object, generated from the URL configuration (issue 8, item 17).

Every named URL the project serves (the admin's included) is asked for by every kind of
caller: signed out, signed in with no role, each role, and API tokens. Path parameters
are filled from a world of two teams' objects, "mine" (the owner's team) and "theirs";
a parameter this file does not know is filled with an id no row has, so a new page is
checked the day it is added, without anyone writing its test. Checked every time:

- no answer is a 5xx;
- a signed-out caller never gets a page (only the public addresses answer 200);
- an owner never sees the other team's marker, on any page (their objects 404, shared
  pages such as sources and runs leave their records out);
- a POST by a role that may not change it (auditor, no role, signed out, the owner on
  the other team's object) changes nothing and writes no audit event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from inventory.roles import Role
from sources import models as sm
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    TeamFactory,
    UserFactory,
)

MARK = "zqtheirs"  # in every name, endpoint and excerpt of the other team's objects
MISSING = 987654321
PUBLIC = {"healthz", "login", "api:openapi", "admin:login", "logout"}
# Addresses that answer a machine, not a session: their own authentication says no.
MACHINE = {"otlp:traces", "hooks:mlflow", "api:deployment-events"}


def url_patterns() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns, namespace: str) -> Iterator[tuple[str, URLPattern]]:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, p.namespace or namespace)
            elif p.name:
                yield (f"{namespace}:{p.name}" if namespace else p.name), p

    seen: set[str] = set()
    for name, pattern in walk(get_resolver().url_patterns, ""):
        if name not in seen and name != "api:not-found":
            seen.add(name)
            yield name, pattern


def params_of(pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.regex.groupindex)


ADMIN_MODELS = {
    f"{model._meta.app_label}_{model._meta.model_name}": model
    for model in (
        m.Team,
        m.AIModel,
        m.ModelVersion,
        m.System,
        m.Deployment,
        m.Dependency,
        m.NonHumanIdentity,
        m.APIToken,
        m.UsageHour,
        sm.DataSource,
        sm.SyncRun,
        sm.DeploymentEvent,
        AuditEvent,
    )
}
API_KEYS = {
    "aimodel": "aimodel",
    "modelversion": "modelversion",
    "system": "system",
    "deployment": "deployment",
    "identity": "identity",
    "team": "team",
}


def build_world(team_a, team_b) -> dict[str, dict[str, Any]]:
    def objects_for(team, tag: str) -> dict[str, Any]:
        model = AIModelFactory(team=team, name=f"{tag}-model")
        version = ModelVersionFactory(model=model, version=f"{tag}-1")
        system = SystemFactory(team=team, name=f"{tag}-system")
        deployment = DeploymentFactory(
            name=f"{tag}-deployment",
            model=model,
            team=team,
            system=system,
            observed_version=version,
            endpoint=f"https://{tag}.internal",
            source="cicd:1",
            external_id=f"production|https://{tag}.internal",
        )
        upstream = DeploymentFactory(name=f"{tag}-upstream", model=model, team=team)
        dependency = m.Dependency.objects.create(
            upstream=upstream, downstream=deployment
        )
        identity = IdentityFactory(
            team=team, name=f"{tag}-identity", deployments=[deployment]
        )
        event = sm.DeploymentEvent.objects.create(
            model_name=model.name,
            version=version.version,
            environment="production",
            endpoint=deployment.endpoint,
            commit=f"{tag}-commit",
            deployment=deployment,
            model_version=version,
        )
        return {
            "team": team,
            "aimodel": model,
            "modelversion": version,
            "system": system,
            "deployment": deployment,
            "dependency": dependency,
            "identity": identity,
            "deploymentevent": event,
        }

    mine = objects_for(team_a, "mine")
    theirs = objects_for(team_b, MARK)
    source = sm.DataSource.objects.create(name="CI/CD", kind="cicd", schedule_minutes=0)
    run = sm.SyncRun.objects.create(
        source=source,
        trigger="manual",
        status="partial",
        errors=1,
        changes=[
            {"action": "updated", "kind": "deployment", "external_id": d.external_id}
            for d in (mine["deployment"], theirs["deployment"])
        ],
    )
    sm.SyncError.objects.create(
        run=run,
        external_id=theirs["deployment"].external_id,
        reason="bad",
        excerpt=f"{MARK}-excerpt",
    )
    token, _ = services.api_token_issue(
        actor=None, name="matrix", scopes=["read"], days=1
    )
    shared = {"datasource": source, "syncrun": run, "apitoken": token}
    for world in (mine, theirs):
        world.update(shared)
        world["auditevent"] = (
            AuditEvent.objects.filter(team_id=world["team"].pk).order_by("seq").first()
        )
    return {"mine": mine, "theirs": theirs}


def fill(
    name: str, params: list[str], objects: dict[str, Any]
) -> dict[str, Any] | None:
    """kwargs for `name` from one side's objects; None when a parameter is unknown."""
    _, _, short = name.rpartition(":")
    key = short.rsplit("_", 1)[0] if "_" in short else short
    kwargs: dict[str, Any] = {}

    def pk_of(key: str) -> int:
        obj = objects.get(key)
        return obj.pk if obj is not None else MISSING

    for param in params:
        if name.startswith("admin:") and param in {"object_id", "id"}:
            model = ADMIN_MODELS.get(short.rsplit("_", 1)[0])
            key_name = model._meta.model_name if model else ""
            if model is m.NonHumanIdentity:
                key_name = "identity"
            kwargs[param] = str(pk_of(key_name)) if model else str(MISSING)
        elif param == "app_label" or param == "url" or param == "rest":
            return None
        elif name.startswith("api:") and param == "pk":
            basename = short.rsplit("-", 1)[0]
            kwargs[param] = pk_of(
                {"source": "datasource", "syncrun": "syncrun"}.get(
                    basename, API_KEYS.get(basename, basename)
                )
            )
        elif name in {"inventory:identity_bind", "inventory:identity_unbind"}:
            kwargs[param] = pk_of("identity" if param == "pk" else "deployment")
        elif name.startswith("inventory:dependency_"):
            kwargs[param] = pk_of("deployment" if param == "pk" else "dependency")
        elif name.startswith("inventory:") and param == "pk":
            kwargs[param] = pk_of(key)
        elif param == "kind":
            kwargs[param] = {
                "inventory:lookup": "aimodel",
                "sources:source_create": "kubernetes",
                "sources:revoke": "identity",
            }.get(name, "unknown")
        elif name == "sources:revoke" and param == "pk":
            kwargs[param] = pk_of("identity")
        elif name.startswith("sources:run_"):
            kwargs[param] = pk_of("syncrun")
        elif name.startswith("sources:") or name.startswith("hooks:"):
            kwargs[param] = pk_of("datasource")
        elif name == "tokens:token_revoke":
            kwargs[param] = pk_of("apitoken")
        elif name == "governance:audit_detail":
            event = objects.get("auditevent")
            kwargs[param] = event.seq if event is not None else MISSING
        elif name == "governance:version_approval":
            kwargs[param] = pk_of("modelversion")
        else:
            kwargs[param] = MISSING  # a page this file does not know: a missing row
    return kwargs


def governed_counts() -> tuple[int, ...]:
    return tuple(
        model._default_manager.count()
        for model in (
            m.Team,
            m.AIModel,
            m.ModelVersion,
            m.System,
            m.Deployment,
            m.Dependency,
            m.NonHumanIdentity,
            m.APIToken,
            sm.DataSource,
            sm.SyncRun,
            AuditEvent,
        )
    )


CALLERS = [
    "anonymous",
    "norole",
    "owner",
    "risk",
    "compliance",
    "auditor",
    "admin",
    "token",
]
READ_ONLY = {"anonymous", "norole", "auditor", "token"}


def client_for(caller: str, team_a) -> Client:
    client = Client()
    if caller == "anonymous":
        return client
    if caller == "token":
        _, raw = services.api_token_issue(
            actor=None, name="reader", scopes=["read"], days=1
        )
        return Client(headers={"Authorization": f"Bearer {raw}"})
    role = {
        "owner": Role.OWNER,
        "risk": Role.RISK,
        "compliance": Role.COMPLIANCE,
        "auditor": Role.AUDITOR,
        "admin": Role.ADMIN,
    }.get(caller)
    user = UserFactory(
        username=f"matrix-{caller}",
        role=role,
        teams=[team_a] if caller == "owner" else [],
        is_staff=caller == "admin",
    )
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_role_url_foreign_object_matrix(caller):
    team_a = TeamFactory(name="Mine", slug="mine")
    team_b = TeamFactory(name=f"{MARK} team", slug=MARK)
    world = build_world(team_a, team_b)
    client = client_for(caller, team_a)
    problems: list[str] = []
    checks = 0
    for name, pattern in url_patterns():
        params = params_of(pattern)
        sides = ["mine", "theirs", "missing"] if params else ["none"]
        for side in sides:
            objects = {} if side in {"missing", "none"} else world[side]
            kwargs = fill(name, params, objects)
            if kwargs is None:
                continue
            url = reverse(name, kwargs=kwargs)
            methods = ["get"]
            may_not_write = caller in READ_ONLY or (
                caller == "owner" and side == "theirs"
            )
            if may_not_write and not name.startswith("admin:") and name not in MACHINE:
                methods.append("post")
            for method in methods:
                before = governed_counts() if method == "post" else None
                response = getattr(client, method)(url)
                checks += 1
                status = response.status_code
                where = f"{caller} {method.upper()} {url} ({name}, {side})"
                if status >= 500:
                    problems.append(f"{where}: {status}")
                    continue
                body = b"" if response.streaming else response.content
                if (
                    caller == "anonymous"
                    and name not in PUBLIC | MACHINE
                    and status == 200
                ):
                    problems.append(f"{where}: a page for a signed-out caller")
                if caller in {"owner", "norole"} and MARK.encode() in body:
                    problems.append(f"{where}: shows the other team's {MARK}")
                if before is not None and governed_counts() != before:
                    problems.append(f"{where}: a forbidden POST changed rows")
    assert not problems, "\n".join(problems[:40])
    # The probe made 1,911 role-by-URL checks: each caller makes its share or more.
    assert checks * len(CALLERS) >= 1911, checks
