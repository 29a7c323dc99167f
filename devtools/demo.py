"""Demo data: a believable organisation for first start, screenshots, tests and the bench.

Everything is generated from `random.Random(seed)` and every timestamp is an offset from
the moment of the seed (`now`, the current time unless given): a demo seeded today shows
deployments answering today, credentials unused since a date in the past, and so on. The
same seed and the same `now` give the same rows, names and times on every run and every
database (ids aside), so screenshots and bench numbers are comparable.

Rows are written with `bulk_create` in batches, in one transaction: a seed that fails half-way
leaves nothing behind, so `seed_demo --if-empty` can simply run again. Identities and their
bindings, the bulk of the rows, are generated and written one chunk at a time so memory stays
flat at any scale. The seed writes one audit event that summarises it, not one per row.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.text import slugify

from inventory import models as m
from inventory import summary
from inventory.roles import Role
from inventory.services import change_record

DEMO_SOURCE = "demo"
# Every SILENT_EVERY-th active deployment and identity has not been reported for days:
# the demo's "silent" cases (querysets.deployment_silent_q, identity_silent_q).
SILENT_EVERY = 25
BATCH_SIZE = 2000
# Identities are generated and written this many at a time (with their bindings).
IDENTITY_CHUNK = 10_000
# Seeded people cannot sign in: a password starting with "!" is Django's "unusable" marker.
UNUSABLE_PASSWORD = "!demo-person"
EMAIL_DOMAIN = "example.com"

INVENTORY_NOT_EMPTY = "The inventory already holds models; demo data is only seeded into an empty inventory."
SEED_TOO_SMALL = "Seed at least one model, one deployment and one identity."

# One sign-in per role. The passwords are public on purpose (README, "Demo accounts"): they
# exist so a first-time user can look around. They pass the project's password validators.
DEMO_ACCOUNTS: list[tuple[str, str, Role]] = [
    ("owner", "owner-demo-2026!", Role.OWNER),
    ("risk", "risk-demo-2026!", Role.RISK),
    ("compliance", "compliance-demo-2026!", Role.COMPLIANCE),
    ("auditor", "auditor-demo-2026!", Role.AUDITOR),
    ("admin", "admin-demo-2026!", Role.ADMIN),
]
# The demo `owner` belongs to these two teams, so owner-scoped pages show two teams' objects.
OWNER_TEAM_SLUGS = ("credit-risk", "fraud")

# The name catalogues are data, in devtools/data/*.json; the weights that shape the mix
# stay below, in code. Loaded once, into the same shapes (tuples, enum members) the seeder
# has always read, so a seed is the same organisation as before.
DATA_DIR = Path(__file__).resolve().parent / "data"


def _data(name: str) -> dict[str, Any]:
    with (DATA_DIR / f"{name}.json").open(encoding="utf-8") as f:
        return json.load(f)


_TEAMS, _MODELS, _SYSTEMS = _data("teams"), _data("models"), _data("systems")
_PEOPLE, _OPERATIONS = _data("people"), _data("operations")
K = m.AIModel.Kind
S = m.System.Kind
S_AGENT = S.AGENT

# (name, slug, domain, description). The first team is the target of the seed's audit event.
BASE_TEAMS: list[tuple[str, str, str, str]] = [
    (t["name"], t["slug"], t["domain"], t["description"]) for t in _TEAMS["base"]
]
# Teams added at scale: business area (with the catalogue it draws from) x region.
AREAS: list[tuple[str, str]] = [(a["name"], a["domain"]) for a in _TEAMS["areas"]]
REGIONS: list[str] = list(_TEAMS["regions"])
# Per domain: (base name, kind, built by a vendor?, purpose).
MODEL_CATALOGUE: dict[str, list[tuple[str, str, bool, str]]] = {
    domain: [(r["name"], K(r["kind"]), r["vendor"], r["purpose"]) for r in rows]
    for domain, rows in _MODELS["catalogue"].items()
}
MODEL_QUALIFIERS: list[str] = list(_MODELS["qualifiers"])
# Per domain: (base name, kind, business purpose).
SYSTEM_CATALOGUE: dict[str, list[tuple[str, str, str]]] = {
    domain: [(r["name"], S(r["kind"]), r["purpose"]) for r in rows]
    for domain, rows in _SYSTEMS["catalogue"].items()
}
# Vendor model names, oldest first: a model's versions are a run of consecutive entries.
VENDOR_VERSIONS: dict[tuple[str, str], list[str]] = {
    (v["vendor"], K(v["kind"])): list(v["versions"]) for v in _MODELS["vendor_versions"]
}
CHANGE_WINDOWS: list[str] = list(_OPERATIONS["change_windows"])
DEPENDENCY_TEXT: dict[str, list[str]] = {
    m.Dependency.Kind(kind): list(texts)
    for kind, texts in _OPERATIONS["dependency_text"].items()
}
PROVIDER_SCOPES: dict[str, list[str]] = {
    provider: list(scopes)
    for provider, scopes in _OPERATIONS["provider_scopes"].items()
}
THIRD_PARTY_VENDORS: list[str] = list(_OPERATIONS["third_party_vendors"])
IDENTITY_SUFFIXES: list[str] = list(_OPERATIONS["identity_suffixes"])
FIRST_NAMES: list[str] = list(_PEOPLE["first_names"])
LAST_NAMES: list[str] = list(_PEOPLE["last_names"])

LLM_VENDORS = (
    ["OpenAI", "Anthropic", "Google", "Cohere", "internal"],
    [35, 25, 15, 10, 15],
)
EMBEDDING_VENDORS = (["OpenAI", "Cohere", "Google", "internal"], [40, 25, 15, 20])

LIFECYCLES = (
    [
        m.AIModel.Lifecycle.DEVELOPMENT,
        m.AIModel.Lifecycle.ACTIVE,
        m.AIModel.Lifecycle.DEPRECATED,
        m.AIModel.Lifecycle.RETIRED,
    ],
    [15, 58, 12, 15],
)
# How often a model of each lifecycle is picked for a deployment. Retired models still get
# some: those are the shadow deployments governance has to find.
DEPLOYMENT_WEIGHT = {
    m.AIModel.Lifecycle.DEVELOPMENT: 0.5,
    m.AIModel.Lifecycle.ACTIVE: 1.0,
    m.AIModel.Lifecycle.DEPRECATED: 0.6,
    m.AIModel.Lifecycle.RETIRED: 0.3,
}

# Where each provider's models run: (platforms, weights).
PLATFORMS = {
    "internal": (["kubernetes", "sagemaker", "vertex"], [55, 25, 20]),
    "OpenAI": (["openai", "azure-openai"], [70, 30]),
    "Anthropic": (["bedrock", "anthropic"], [60, 40]),
    "Google": (["vertex"], [1]),
    "Cohere": (["bedrock", "cohere"], [50, 50]),
}
AWS_REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-1"]
GCP_REGIONS = ["europe-west4", "europe-west2", "us-central1", "asia-southeast1"]
ENV_SHORT = {"production": "prod", "staging": "stg", "development": "dev"}

# Identities: which provider a deployment on each platform uses for its own credential.
PLATFORM_PROVIDER = {
    "kubernetes": "kubernetes",
    "sagemaker": "aws",
    "bedrock": "aws",
    "vertex": "gcp",
    "openai": "openai",
    "azure-openai": "azure",
    "anthropic": "vault",
    "cohere": "vault",
}
PROVIDER_MIX = (
    ["aws", "gcp", "azure", "github", "vault", "kubernetes", "openai"],
    [22, 12, 10, 18, 14, 16, 8],
)
NK = m.NonHumanIdentity.Kind
PROVIDER_KINDS: dict[str, tuple[list[str], list[int]]] = {
    "aws": ([NK.ACCESS_KEY, NK.SERVICE_ACCOUNT], [45, 55]),
    "gcp": ([NK.SERVICE_ACCOUNT, NK.API_KEY], [75, 25]),
    "azure": ([NK.SERVICE_ACCOUNT, NK.OAUTH_APP], [60, 40]),
    "github": ([NK.WORKFLOW_TOKEN, NK.OAUTH_APP], [70, 30]),
    "vault": ([NK.API_KEY, NK.WORKFLOW_TOKEN], [65, 35]),
    "kubernetes": ([NK.SERVICE_ACCOUNT], [1]),
    "openai": ([NK.API_KEY], [1]),
}
IDENTITY_VENDORS = {
    "openai": "OpenAI",
    "github": "GitHub",
    "anthropic": "Anthropic",
    "cohere": "Cohere",
}


def _risk_people() -> list[tuple[str, str, str]]:
    """Model-risk committee members who sign approvals (username, first, last)."""
    return [
        ("priya.raman", "Priya", "Raman"),
        ("jonas.berg", "Jonas", "Berg"),
        ("amara.obi", "Amara", "Obi"),
    ]


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def has_demo_data() -> bool:
    """True once the inventory holds any model (seeded or not)."""
    return m.AIModel.objects.exists()


@transaction.atomic
def ensure_demo_accounts() -> list[tuple[str, str, str]]:
    """Create or repair the demo sign-ins; return (username, password, role name) for each.

    Idempotent: each account ends with exactly its role group, its password, an active flag,
    and (for `owner`) membership of the credit risk and fraud teams.
    """
    User = get_user_model()
    owner_teams = [_base_team(slug) for slug in OWNER_TEAM_SLUGS]
    result = []
    for username, password, role in DEMO_ACCOUNTS:
        user, _ = User.objects.get_or_create(
            username=username,
            defaults={
                "email": f"{username}@{EMAIL_DOMAIN}",
                "first_name": "Demo",
                "last_name": role.value,
            },
        )
        is_admin = role == Role.ADMIN
        changed = []
        for attr, value in (
            ("is_active", True),
            ("is_staff", is_admin),
            ("is_superuser", is_admin),
        ):
            if getattr(user, attr) != value:
                setattr(user, attr, value)
                changed.append(attr)
        # check_password costs one hash; set_password another. Skip the write when unchanged.
        if not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
        user.groups.set([Group.objects.get_or_create(name=role.value)[0]])
        if role == Role.OWNER:
            for team in owner_teams:
                team.members.add(user)
        result.append((username, password, role.value))
    return result


def seed_demo(
    *,
    seed: int = 7,
    models: int = 60,
    deployments: int = 200,
    identities: int = 600,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Fill an empty inventory with a believable organisation; return the counts created.

    Timestamps are offsets from `now` (default: the current time), so the demo is as
    fresh on the day it is seeded as on any other day.
    """
    if has_demo_data():
        raise ValidationError(INVENTORY_NOT_EMPTY)
    if min(models, deployments, identities) < 1:
        raise ValidationError(SEED_TOO_SMALL)
    # Not for secrets: a reproducible stream is the point.
    rng = random.Random(seed)  # noqa: S311
    seeder = _Seeder(
        rng,
        progress or (lambda _message: None),
        (now or timezone.now()).replace(microsecond=0),
    )
    with _keep_given_updated_at(), transaction.atomic():
        seeder.teams_and_people(models)
        seeder.models_and_versions(models)
        seeder.systems(max(2 * len(seeder.team_ids), deployments // 15))
        seeder.deployments_and_dependencies(deployments)
        seeder.identities(identities)
        counts = dict(seeder.counts)
        summary.mark_dirty([None, *seeder.team_ids], inline=False)  # bulk-inserted
        change_record(
            actor=None,
            actor_label="seed_demo",
            action="inventory.seed",
            target=m.Team.objects.get(pk=seeder.team_ids[0]),
            before=None,
            after={"seed": seed, **counts},
        )
    if connection.vendor in {"postgresql", "sqlite"}:
        # Freshly loaded tables have no planner statistics until autovacuum (PostgreSQL) gets
        # to them, or ever (SQLite keeps none until ANALYZE runs).
        seeder.say("analysing tables")
        with connection.cursor() as cursor:
            for model in SEEDED_MODELS:
                cursor.execute(
                    f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}"
                )
    seeder.say("counting the dashboard's summary")
    summary.refresh_dirty()
    seeder.say("computing risk tiers")
    from governance import tiers

    tiers.recompute()
    seeder.say("detecting findings")
    from governance import detection

    # No email for the seeded findings: nobody asked for them yet.
    result = detection.run(notify=False)
    seeder.say(f"{result.counts.get('opened', 0)} findings opened")
    return counts


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------
# The inventory's own tables the seed fills, and with the many-to-many tables, all it writes.
SEEDED_ENTITIES: tuple[type[Model], ...] = (
    m.Team,
    m.AIModel,
    m.ModelVersion,
    m.System,
    m.Deployment,
    m.Dependency,
    m.NonHumanIdentity,
)
SEEDED_MODELS: list[type[Model]] = [
    *SEEDED_ENTITIES,
    m.NonHumanIdentity.deployments.through,
    m.Team.members.through,
]


@contextmanager
def _keep_given_updated_at() -> Iterator[None]:
    """Let bulk_create keep the `updated_at` we generate instead of stamping the real time.

    `auto_now` fields are overwritten in pre_save, even by bulk_create. Turning it off for the
    length of the seed keeps seeded timestamps deterministic; nothing else saves these models
    during a seed (it runs from a command, before the web server starts).
    """
    fields = [model._meta.get_field("updated_at") for model in SEEDED_ENTITIES]
    previous = [f.auto_now for f in fields]
    for f in fields:
        f.auto_now = False
    try:
        yield
    finally:
        for f, value in zip(fields, previous, strict=True):
            f.auto_now = value


def _base_team(slug: str) -> m.Team:
    name, slug, _domain, description = next(t for t in BASE_TEAMS if t[1] == slug)
    team = (
        m.Team.objects.filter(slug=slug).first()
        or m.Team.objects.filter(name=name).first()
    )
    if team is None:
        team = m.Team.objects.create(
            name=name,
            slug=slug,
            description=description,
            created_at=timezone.now() - timedelta(days=1500),
        )
    return team


def _days(value: float) -> timedelta:
    return timedelta(seconds=round(value * 86400))


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


class _Seeder:
    """Holds the random stream and what later steps need from earlier ones (ids, by index).

    Every random draw happens in a fixed order that does not depend on database ids, so the
    same seed produces the same organisation on SQLite and PostgreSQL.
    """

    def __init__(
        self, rng: random.Random, progress: Callable[[str], None], now: datetime
    ) -> None:
        self.rng = rng
        self.say = progress
        self.now = now
        self.counts: dict[str, int] = {}
        self.team_ids: list[int] = []
        self.team_slugs: list[str] = []
        self.team_domains: list[str] = []
        self.team_members: list[list[int]] = []
        self.approver_ids: list[int] = []
        # Models, by index.
        self.model_ids: list[int] = []
        self.model_names: list[str] = []
        self.model_team: list[int] = []
        self.model_lifecycle: list[str] = []
        self.model_provider: list[str] = []
        self.model_kind: list[str] = []
        self.model_purpose: list[str] = []
        self.model_created: list[datetime] = []
        # Per model: [(version id, approval, created_at)], oldest first.
        self.model_versions: list[list[tuple[int, str, datetime]]] = []
        self.team_systems: list[list[tuple[int, str, str]]] = []
        # Deployments, by index.
        self.dep_ids: list[int] = []
        self.dep_team: list[int] = []
        self.dep_platform: list[str] = []
        self.dep_names: list[str] = []
        self.team_deps: list[list[int]] = []

    # -- helpers ---------------------------------------------------------------
    def _insert(self, model: type[Model], objs: list[Model]) -> list[Model]:
        return model.objects.bulk_create(objs, batch_size=BATCH_SIZE)

    def _pick(self, options: tuple[list, list]) -> Any:
        return self.rng.choices(options[0], weights=options[1])[0]

    def _member(self, team: int, chance: float) -> int | None:
        members = self.team_members[team]
        if members and self.rng.random() < chance:
            return self.rng.choice(members)
        return None

    def _between(self, start: datetime, end: datetime) -> datetime:
        if end <= start:
            return start
        span = (end - start).total_seconds()
        return start + timedelta(seconds=round(self.rng.random() * span))

    # -- teams and people ------------------------------------------------------
    def teams_and_people(self, models: int) -> None:
        rng = self.rng
        wanted = max(len(BASE_TEAMS), min(len(AREAS) * len(REGIONS), models // 25))
        specs = list(BASE_TEAMS)
        combos = [(a, d, r) for a, d in AREAS for r in REGIONS]
        rng.shuffle(combos)
        for area, domain, region in combos[: wanted - len(specs)]:
            name = f"{area} {region}"
            specs.append(
                (name, slugify(name), domain, f"{area} for {region} customers.")
            )
        existing = {
            t.slug: t for t in m.Team.objects.filter(slug__in=[s[1] for s in specs])
        }
        new = [
            m.Team(
                name=name,
                slug=slug,
                description=description,
                created_at=self.now - _days(rng.uniform(400, 1500)),
            )
            for name, slug, _domain, description in specs
            if slug not in existing
        ]
        for team in new:
            team.updated_at = team.created_at
        created = {t.slug: t for t in self._insert(m.Team, new)}
        for _name, slug, domain, _description in specs:
            team = existing.get(slug) or created[slug]
            self.team_ids.append(team.pk)
            self.team_slugs.append(slug)
            self.team_domains.append(domain)
        self.counts["teams"] = len(new)
        self.say(f"teams: {len(specs)} ({len(new)} new)")

        User = get_user_model()
        taken = set(User.objects.values_list("username", flat=True))
        people: list[tuple[str, str, str, int | None]] = [
            (u, f, last, None) for u, f, last in _risk_people() if u not in taken
        ]
        taken.update(u for u, _, _, _ in people)
        for index in range(len(specs)):
            for _ in range(
                rng.randint(5, 8) if index < len(BASE_TEAMS) else rng.randint(3, 6)
            ):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                base = f"{first}.{last}".lower()
                username, n = base, 1
                while username in taken:
                    n += 1
                    username = f"{base}{n}"
                taken.add(username)
                people.append((username, first, last, index))
        users = self._insert(
            User,
            [
                User(
                    username=username,
                    first_name=first,
                    last_name=last,
                    email=f"{username}@{EMAIL_DOMAIN}",
                    password=UNUSABLE_PASSWORD,
                    date_joined=self.now - _days(rng.uniform(30, 2000)),
                )
                for username, first, last, _team in people
            ],
        )
        self.team_members = [[] for _ in specs]
        for user, (_u, _f, _l, team) in zip(users, people, strict=True):
            if team is None:
                self.approver_ids.append(user.pk)
            else:
                self.team_members[team].append(user.pk)
        if not self.approver_ids:
            self.approver_ids = list(
                User.objects.filter(
                    username__in=[u for u, _, _ in _risk_people()]
                ).values_list("pk", flat=True)
            )
        groups = {
            role: Group.objects.get_or_create(name=role.value)[0].pk
            for role in (Role.OWNER, Role.RISK)
        }
        UserGroup = User.groups.through
        self._insert(
            UserGroup,
            [
                UserGroup(
                    user_id=user.pk,
                    group_id=groups[Role.RISK if team is None else Role.OWNER],
                )
                for user, (_u, _f, _l, team) in zip(users, people, strict=True)
            ],
        )
        Membership = m.Team.members.through
        self._insert(
            Membership,
            [
                Membership(team_id=self.team_ids[index], user_id=user_id)
                for index, members in enumerate(self.team_members)
                for user_id in members
            ],
        )
        self.counts["people"] = len(users)
        self.say(f"people: {len(users)}")

    # -- models and versions ---------------------------------------------------
    def models_and_versions(self, count: int) -> None:
        rng, now = self.rng, self.now
        used: set[str] = set()
        objs = []
        for i in range(count):
            team = i if i < len(self.team_ids) else rng.randrange(len(self.team_ids))
            base, kind, vendor_built, purpose = rng.choice(
                MODEL_CATALOGUE[self.team_domains[team]]
            )
            name = self._unique_model_name(base, team, used)
            if not vendor_built:
                provider = "internal"
            elif kind == K.EMBEDDING:
                provider = self._pick(EMBEDDING_VENDORS)
            else:
                provider = self._pick(LLM_VENDORS)
            lifecycle = self._pick(LIFECYCLES)
            created = now - _days(rng.uniform(120, 1500))
            external_id = (
                f"mlflow:registered-models/{name}"
                if provider == "internal"
                else f"{provider.lower()}:{name}"
            )
            objs.append(
                m.AIModel(
                    name=name,
                    kind=kind,
                    provider=provider,
                    description=purpose,
                    lifecycle=lifecycle,
                    team_id=self.team_ids[team],
                    owner_id=self._member(team, 0.92),
                    source=DEMO_SOURCE,
                    external_id=external_id,
                    created_at=created,
                    updated_at=self._between(created, now - timedelta(days=1)),
                )
            )
            self.model_names.append(name)
            self.model_team.append(team)
            self.model_lifecycle.append(lifecycle)
            self.model_provider.append(provider)
            self.model_kind.append(kind)
            self.model_purpose.append(purpose)
            self.model_created.append(created)
        for start in range(0, len(objs), BATCH_SIZE):
            chunk = self._insert(m.AIModel, objs[start : start + BATCH_SIZE])
            self.model_ids.extend(o.pk for o in chunk)
        self.counts["models"] = len(objs)
        self.say(f"models: {len(objs)}")
        del objs

        total = 0
        batch: list[m.ModelVersion] = []
        pending: list[
            tuple[int, str, datetime]
        ] = []  # (model index, approval, created)
        for i in range(count):
            rows = self._versions_for(i)
            self.model_versions.append([])
            for obj in rows:
                batch.append(obj)
                pending.append((i, obj.approval, obj.created_at))
            if len(batch) >= BATCH_SIZE or i == count - 1:
                for obj, (index, approval, created) in zip(
                    self._insert(m.ModelVersion, batch), pending, strict=True
                ):
                    self.model_versions[index].append((obj.pk, approval, created))
                total += len(batch)
                batch, pending = [], []
        self.counts["versions"] = total
        self.say(f"versions: {total}")

    def _unique_model_name(self, base: str, team: int, used: set[str]) -> str:
        candidates = [base, f"{base}-{self.rng.choice(MODEL_QUALIFIERS)}"]
        candidates.append(f"{base}-{self.team_slugs[team]}")
        for name in candidates:
            if name not in used:
                used.add(name)
                return name
        n = 2
        while f"{candidates[-1]}-{n}" in used:
            n += 1
        used.add(f"{candidates[-1]}-{n}")
        return f"{candidates[-1]}-{n}"

    def _versions_for(self, i: int) -> list[m.ModelVersion]:
        rng, now = self.rng, self.now
        name, provider, kind = (
            self.model_names[i],
            self.model_provider[i],
            self.model_kind[i],
        )
        wanted = rng.randint(1, 6)
        vendor_names = VENDOR_VERSIONS.get((provider, kind))
        if vendor_names:
            wanted = min(wanted, len(vendor_names))
            end = rng.randint(wanted, len(vendor_names))
            labels = vendor_names[end - wanted : end]
        else:
            labels, major, minor, patch = [], 1, 0, 0
            for n in range(wanted):
                if n:
                    r = rng.random()
                    if r < 0.2:
                        major, minor, patch = major + 1, 0, 0
                    elif r < 0.8:
                        minor, patch = minor + 1, 0
                    else:
                        patch += 1
                labels.append(f"{major}.{minor}.{patch}")
        approvals = self._approvals(self.model_lifecycle[i], len(labels))
        start = self.model_created[i]
        times = sorted(self._between(start, now - timedelta(days=3)) for _ in labels)
        team_slug = self.team_slugs[self.model_team[i]]
        model_ext = (
            f"mlflow:registered-models/{name}"
            if provider == "internal"
            else f"{provider.lower()}:{name}"
        )
        mlflow = rng.random() < 0.5
        rows = []
        for n, (label, approval, created) in enumerate(
            zip(labels, approvals, times, strict=True)
        ):
            if provider != "internal":
                uri = f"{provider.lower()}:{label}"
            elif mlflow:
                uri = f"models:/{name}/{n + 1}"
            else:
                uri = f"s3://acme-ml-artifacts/{team_slug}/{name}/{label}/model.tar.gz"
            once_approved = approval in {"approved", "deprecated", "retired"}
            approved_at = (
                min(created + _days(rng.uniform(1, 30)), now - timedelta(days=1))
                if once_approved
                else None
            )
            rows.append(
                m.ModelVersion(
                    model_id=self.model_ids[i],
                    version=label,
                    artifact_uri=uri,
                    digest=_digest(name, label),
                    approval=approval,
                    approved_by_id=rng.choice(self.approver_ids)
                    if once_approved and self.approver_ids
                    else None,
                    approved_at=approved_at,
                    approved_bounds=self._bounds(kind)
                    if approval == "approved"
                    else {},
                    source=DEMO_SOURCE,
                    external_id=f"{model_ext}/versions/{label}",
                    created_at=created,
                    updated_at=approved_at or created,
                )
            )
        return rows

    def _approvals(self, lifecycle: str, n: int) -> list[str]:
        rng = self.rng
        A = m.ModelVersion.Approval
        L = m.AIModel.Lifecycle
        if lifecycle == L.RETIRED:
            return [A.RETIRED] * n
        if lifecycle == L.DEPRECATED:
            return [A.RETIRED] * (n - 1) + [A.DEPRECATED]
        if lifecycle == L.DEVELOPMENT:
            older = [
                rng.choice([A.REJECTED, A.PENDING, A.REJECTED]) for _ in range(n - 1)
            ]
            latest = rng.choices(
                [A.PENDING, A.REJECTED, A.APPROVED], weights=[70, 10, 20]
            )[0]
            return [*older, latest]
        older = rng.choices(
            [A.APPROVED, A.DEPRECATED, A.RETIRED, A.REJECTED],
            weights=[25, 40, 25, 10],
            k=n - 1,
        )
        if n > 1 and rng.random() < 0.2:
            # A newer version waits for approval while the previous one serves.
            return [*older[:-1], A.APPROVED, A.PENDING]
        return [*older, A.APPROVED]

    def _bounds(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        bounds: dict[str, Any] = {
            "max_error_rate": rng.choice([0.005, 0.01, 0.02, 0.05])
        }
        if kind == K.CLASSIFIER:
            bounds |= {
                "min_auc": round(rng.uniform(0.72, 0.92), 2),
                "max_psi": 0.2,
                "max_p95_latency_ms": rng.choice([50, 100, 200]),
            }
        elif kind == K.REGRESSION:
            bounds |= {
                "max_mape": round(rng.uniform(0.05, 0.2), 2),
                "max_p95_latency_ms": rng.choice([100, 300, 800]),
            }
        elif kind == K.LLM:
            bounds |= {
                "max_p95_latency_ms": rng.choice([1500, 3000, 8000]),
                "max_tokens_per_request": rng.choice([1024, 4096, 8192]),
                "max_daily_cost_usd": rng.choice([50, 200, 1000]),
                "human_in_the_loop": rng.random() < 0.6,
                "blocked_topics": rng.sample(
                    [
                        "legal advice",
                        "medical advice",
                        "investment advice",
                        "credit decisions",
                    ],
                    2,
                ),
            }
        elif kind == K.EMBEDDING:
            bounds |= {
                "max_p95_latency_ms": 300,
                "max_daily_calls": rng.choice([100_000, 1_000_000]),
            }
        elif kind == K.RANKING:
            bounds |= {"min_ndcg_at_10": round(rng.uniform(0.3, 0.6), 2)}
        else:
            bounds |= {"max_p95_latency_ms": 800}
        bounds["allowed_environments"] = ["production", "staging"]
        return bounds

    # -- systems ---------------------------------------------------------------
    def systems(self, count: int) -> None:
        rng, now = self.rng, self.now
        used: set[str] = set()
        objs, teams = [], []
        for i in range(count):
            team = (
                i % len(self.team_ids)
                if i < 2 * len(self.team_ids)
                else rng.randrange(len(self.team_ids))
            )
            base, kind, purpose = rng.choice(SYSTEM_CATALOGUE[self.team_domains[team]])
            name = base if base not in used else f"{base}-{self.team_slugs[team]}"
            n = 2
            while name in used:
                name = f"{base}-{self.team_slugs[team]}-{n}"
                n += 1
            used.add(name)
            created = now - _days(rng.uniform(60, 1400))
            objs.append(
                m.System(
                    name=name,
                    kind=kind,
                    description=f"Owned by {self.team_slugs[team]}.",
                    business_purpose=purpose,
                    team_id=self.team_ids[team],
                    owner_id=self._member(team, 0.9),
                    source=DEMO_SOURCE,
                    external_id=f"backstage:component/default/{name}",
                    created_at=created,
                    updated_at=self._between(created, now),
                )
            )
            teams.append(team)
        self.team_systems = [[] for _ in self.team_ids]
        for obj, team in zip(self._insert(m.System, objs), teams, strict=True):
            self.team_systems[team].append((obj.pk, obj.kind, obj.name))
        self.counts["systems"] = len(objs)
        self.say(f"systems: {len(objs)}")

    # -- deployments and dependencies -----------------------------------------
    def deployments_and_dependencies(self, count: int) -> None:
        rng = self.rng
        weights = [DEPLOYMENT_WEIGHT[lc] for lc in self.model_lifecycle]
        cumulative, total = [], 0.0
        for w in weights:
            total += w
            cumulative.append(total)
        population = range(len(self.model_ids))
        # The first deployments cover every model once, so each model runs somewhere.
        order = list(population)[:count]
        order += rng.choices(population, cum_weights=cumulative, k=count - len(order))
        self.team_deps = [[] for _ in self.team_ids]
        used: set[str] = set()
        edges = 0
        for start in range(0, count, BATCH_SIZE):
            batch, meta = [], []
            for model_index in order[start : start + BATCH_SIZE]:
                obj, team, kind = self._deployment(model_index, used)
                batch.append(obj)
                meta.append((team, kind))
            created = self._insert(m.Deployment, batch)
            dependencies = []
            for obj, (team, system_kind) in zip(created, meta, strict=True):
                index = len(self.dep_ids)
                self.dep_ids.append(obj.pk)
                self.dep_team.append(team)
                self.dep_platform.append(obj.platform)
                self.dep_names.append(obj.name)
                dependencies.extend(self._dependencies_for(index, team, system_kind))
                self.team_deps[team].append(index)
            self._insert(m.Dependency, dependencies)
            edges += len(dependencies)
        self.counts["deployments"] = count
        self.counts["dependencies"] = edges
        self.say(f"deployments: {count}, dependencies: {edges}")

    def _deployment(self, i: int, used: set[str]) -> tuple[m.Deployment, int, str]:
        rng, now = self.rng, self.now
        L, E = m.AIModel.Lifecycle, m.Deployment.Environment
        lifecycle, provider, kind = (
            self.model_lifecycle[i],
            self.model_provider[i],
            self.model_kind[i],
        )
        model_team = self.model_team[i]
        team = model_team if rng.random() < 0.9 else rng.randrange(len(self.team_ids))
        if lifecycle == L.DEVELOPMENT:
            env = rng.choices([E.DEVELOPMENT, E.STAGING], weights=[60, 40])[0]
        else:
            env = rng.choices(
                [E.PRODUCTION, E.STAGING, E.DEVELOPMENT], weights=[55, 25, 20]
            )[0]
        platform = self._pick(PLATFORMS[provider])
        region = rng.choice(GCP_REGIONS if platform == "vertex" else AWS_REGIONS)
        base = f"{self.model_names[i]}-{ENV_SHORT[env]}-{region}"
        name, n = base, 2
        while name in used:
            name = f"{base}-{n}"
            n += 1
        used.add(name)
        team_slug = self.team_slugs[team]
        endpoint, locator = self._where(platform, region, name, team_slug, len(used))

        versions = self.model_versions[i]
        approved = [v for v in versions if v[1] == m.ModelVersion.Approval.APPROVED]
        approved_version = (
            approved[-1]
            if approved and (env != E.DEVELOPMENT or rng.random() < 0.5)
            else None
        )
        observed = approved_version or versions[-1]
        if approved_version and len(versions) > 1 and rng.random() < 0.08:
            # Drift: the runtime reports a version other than the approved one.
            observed = rng.choice([v for v in versions if v[0] != approved_version[0]])

        Status = m.Deployment.Status
        if lifecycle == L.RETIRED:
            # Retired models that still answer: shadow deployments.
            status = rng.choices([Status.ACTIVE, Status.WITHDRAWN], weights=[65, 35])[0]
        else:
            status = rng.choices(
                [Status.ACTIVE, Status.QUARANTINED, Status.WITHDRAWN],
                weights=[92, 2, 6],
            )[0]
        first_seen = self._between(
            max(observed[2], self.model_created[i]), now - timedelta(days=2)
        )
        if status == Status.WITHDRAWN:
            last_seen = self._between(first_seen, now - timedelta(days=30))
        elif status == Status.QUARANTINED:
            last_seen = self._between(max(first_seen, now - timedelta(days=10)), now)
        else:
            answered = rng.uniform(0, 1.5)
            if len(used) % SILENT_EVERY == 0:
                # Active, but no source has reported it for days: silent, not answering.
                last_seen = now - _days(4 + answered * 6)
            else:
                last_seen = now - _days(answered)

        domain = self.team_domains[team]
        systems = self.team_systems[team]
        system = rng.choice(systems) if systems and rng.random() < 0.85 else None
        external_chance = {"support": 0.35, "marketing": 0.25}.get(domain, 0.1)
        if kind == K.LLM:
            external_chance += 0.1
        decides = (
            0.7
            if domain in {"credit", "fraud", "hr"} and kind in {K.CLASSIFIER, K.RANKING}
            else 0.15
        )
        purpose = self.model_purpose[i]
        if system is not None:
            purpose = f"{purpose} Serves {system[2]}."
        obj = m.Deployment(
            name=name,
            model_id=self.model_ids[i],
            observed_version_id=observed[0],
            approved_version_id=approved_version[0] if approved_version else None,
            system_id=system[0] if system else None,
            environment=env,
            endpoint=endpoint,
            platform=platform,
            platform_locator=locator,
            exposure=m.Deployment.Exposure.EXTERNAL
            if rng.random() < external_chance
            else m.Deployment.Exposure.INTERNAL,
            write_access=rng.random()
            < (0.3 if system and system[1] == S_AGENT else 0.1),
            decision_making=rng.random() < decides,
            team_id=self.team_ids[team],
            owner_id=self._member(team, 0.95),
            business_purpose=purpose,
            change_window=rng.choice(CHANGE_WINDOWS),
            status=status,
            first_seen_at=first_seen,
            last_seen_at=last_seen,
            source=DEMO_SOURCE,
            external_id=f"{platform}:{locator}",
            created_at=first_seen,
            updated_at=last_seen,
        )
        return obj, team, system[1] if system else ""

    def _where(
        self, platform: str, region: str, name: str, team_slug: str, serial: int
    ) -> tuple[str, str]:
        """(endpoint, platform locator) in the shape each platform really uses."""
        account = 100000000000 + (sum(map(ord, team_slug)) * 7919) % 899999999999
        project = f"acme-{team_slug}"[:30]
        if platform == "kubernetes":
            namespace = team_slug[:40]
            return (
                f"https://{name}.{namespace}.svc.cluster.local/v1/predict",
                f"{namespace}/{name}",
            )
        if platform == "sagemaker":
            return (
                f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{name}/invocations",
                f"arn:aws:sagemaker:{region}:{account}:endpoint/{name}",
            )
        if platform == "vertex":
            endpoint_id = 1000000000 + serial
            return (
                f"https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/endpoints/{endpoint_id}:predict",
                f"projects/{project}/locations/{region}/endpoints/{endpoint_id}/{name}",
            )
        if platform == "bedrock":
            return (
                f"https://bedrock-runtime.{region}.amazonaws.com/model/{name}/invoke",
                f"arn:aws:bedrock:{region}:{account}:provisioned-model/{name}",
            )
        if platform == "azure-openai":
            return (
                f"https://acme-{team_slug[:20]}.openai.azure.com/openai/deployments/{name}/chat/completions",
                f"acme-{team_slug[:20]}/{name}",
            )
        hosts = {
            "openai": "https://api.openai.com/v1/chat/completions",
            "anthropic": "https://api.anthropic.com/v1/messages",
            "cohere": "https://api.cohere.com/v2/chat",
        }
        return hosts[platform], f"org-acme/{project}/{name}"

    def _dependencies_for(
        self, index: int, team: int, system_kind: str
    ) -> list[m.Dependency]:
        """Edges only ever point from an earlier deployment to a later one: no cycles."""
        rng = self.rng
        earlier = self.team_deps[team]
        if not earlier or rng.random() >= 0.35:
            return []
        upstream = {rng.choice(earlier) for _ in range(rng.randint(1, 2))}
        rows = []
        for up in sorted(upstream):
            if system_kind == S_AGENT:
                kind = m.Dependency.Kind.HANDOFF
            else:
                kind = rng.choices(
                    [m.Dependency.Kind.PIPELINE, m.Dependency.Kind.FALLBACK],
                    weights=[75, 25],
                )[0]
            created = self.now - _days(rng.uniform(1, 400))
            rows.append(
                m.Dependency(
                    upstream_id=self.dep_ids[up],
                    downstream_id=self.dep_ids[index],
                    kind=kind,
                    description=rng.choice(DEPENDENCY_TEXT[kind]),
                    created_at=created,
                    updated_at=created,
                )
            )
        return rows

    # -- identities ------------------------------------------------------------
    def identities(self, count: int) -> None:
        Binding = m.NonHumanIdentity.deployments.through
        bindings = 0
        for start in range(0, count, IDENTITY_CHUNK):
            objs, bound = [], []
            for i in range(start, min(start + IDENTITY_CHUNK, count)):
                obj, deps = self._identity(i)
                objs.append(obj)
                bound.append(deps)
            created = self._insert(m.NonHumanIdentity, objs)
            rows = [
                Binding(nonhumanidentity_id=obj.pk, deployment_id=self.dep_ids[d])
                for obj, deps in zip(created, bound, strict=True)
                for d in deps
            ]
            self._insert(Binding, rows)
            bindings += len(rows)
            self.say(f"identities: {start + len(objs)}/{count}")
        self.counts["identities"] = count
        self.counts["identity_bindings"] = bindings

    def _identity(self, i: int) -> tuple[m.NonHumanIdentity, list[int]]:
        rng, now = self.rng, self.now
        dep = rng.randrange(len(self.dep_ids))
        team = self.dep_team[dep]
        platform = self.dep_platform[dep]
        provider = (
            PLATFORM_PROVIDER[platform]
            if rng.random() < 0.5
            else self._pick(PROVIDER_MIX)
        )
        kind = self._pick(PROVIDER_KINDS[provider])
        base = self.dep_names[dep] + rng.choice(IDENTITY_SUFFIXES)
        name = self._identity_name(provider, kind, base, team, i)
        vendor = IDENTITY_VENDORS.get(provider, "")
        if provider == "vault" and platform in IDENTITY_VENDORS:
            vendor = IDENTITY_VENDORS[platform]
        elif kind == NK.OAUTH_APP and rng.random() < 0.4:
            vendor = rng.choice(THIRD_PARTY_VENDORS)
        pool = PROVIDER_SCOPES[provider]
        scopes = sorted(rng.sample(pool, rng.randint(1, min(3, len(pool)))))

        issued = now - _days(rng.uniform(7, 1400))
        rotated = self._between(issued, now) if rng.random() < 0.55 else None
        usage = rng.random()
        if usage < 0.08:
            last_used = None
        elif usage < 0.33:
            # Stale: unused for 90+ days (or since issue, for young ones).
            last_used = max(
                issued + timedelta(hours=1), now - _days(rng.uniform(91, 900))
            )
        else:
            last_used = max(issued, now - _days(rng.uniform(0, 30)))
        expires = None
        if (
            kind in {NK.ACCESS_KEY, NK.API_KEY, NK.WORKFLOW_TOKEN}
            and rng.random() < 0.6
        ):
            expires = issued + timedelta(days=90 if kind == NK.WORKFLOW_TOKEN else 365)
        St = m.NonHumanIdentity.Status
        if expires is not None and expires < now:
            status = St.EXPIRED if rng.random() < 0.6 else St.ACTIVE
        else:
            status = rng.choices(
                [St.ACTIVE, St.DISABLED, St.REVOKED], weights=[85, 8, 7]
            )[0]
        if rng.random() < 0.08:
            # Ownerless: nobody answers for it, not even a team.
            team_id, owner_id = None, None
        else:
            team_id, owner_id = self.team_ids[team], self._member(team, 0.7)
        deps = {dep}
        siblings = self.team_deps[team]
        for _ in range(rng.choices([0, 1, 2], weights=[55, 30, 15])[0]):
            deps.add(rng.choice(siblings))
        touched = max(t for t in (issued, rotated, last_used) if t is not None)
        # When its inventory last reported it: within hours, or (the silent ones) days ago.
        if i % SILENT_EVERY == SILENT_EVERY - 1:
            seen = now - timedelta(days=4 + i % 11)
        else:
            seen = now - timedelta(minutes=(i * 37) % 600)
        return (
            m.NonHumanIdentity(
                name=name,
                kind=kind,
                provider=provider,
                vendor=vendor,
                scopes=scopes,
                status=status,
                issued_at=issued,
                rotated_at=rotated,
                last_used_at=last_used,
                expires_at=expires,
                team_id=team_id,
                owner_id=owner_id,
                source=DEMO_SOURCE,
                external_id=f"{provider}:{kind}:{i:07d}",
                seen_at=seen,
                created_at=issued,
                updated_at=touched,
            ),
            sorted(deps),
        )

    def _identity_name(
        self, provider: str, kind: str, base: str, team: int, i: int
    ) -> str:
        slug = self.team_slugs[team]
        key = hashlib.sha256(f"{i}".encode()).hexdigest()
        if provider == "aws":
            if kind == NK.ACCESS_KEY:
                return f"iam-user/{base} (AKIA{key[:16].upper()})"
            return f"role/{base}"
        if provider == "gcp":
            if kind == NK.API_KEY:
                return f"{base} API key (projects/acme-{slug[:20]})"
            return f"{base[:30].rstrip('-')}@acme-{slug[:20]}.iam.gserviceaccount.com"
        if provider == "azure":
            if kind == NK.OAUTH_APP:
                return f"app-registration/{base}"
            return f"managed-identity/mi-{base}"
        if provider == "github":
            if kind == NK.OAUTH_APP:
                return f"github-app/acme-{base}-bot"
            return f"acme/{base} deploy workflow"
        if provider == "vault":
            if kind == NK.WORKFLOW_TOKEN:
                return f"auth/approle/role/{base}"
            return f"kv/ml/{slug}/{base}-api-key"
        if provider == "kubernetes":
            return f"system:serviceaccount:{slug[:40]}:{base}"
        return f"sk-proj-…{key[:4]} ({base})"
