"""Applying records: idempotent upserts keyed on (source, external id), with counts.

`ApplyContext.upsert()` is what every connector's apply() calls. For one batch of rows of
one model it reads the stored digests in one query, then inserts the new rows, updates the
changed ones (and any the source had stopped reporting) and writes nothing at all for the
rest: their ids are kept for the run (`seen`), which is how it knows, at the end, which
rows the source no longer reports. Running it twice with the same data writes nothing the
second time (an unchanged row is not rewritten, so PostgreSQL makes no dead tuple of it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

import audit
from audit.actors import Actor
from audit.services import Change
from inventory import history, summary
from inventory import models as m
from inventory.snapshots import json_safe
from sources import models as sm

MAX_STORED_ERRORS = 500
MAX_SAMPLE_CHANGES = 50


def digest(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# What a run's counters count, the same for every connector, pull or upload (the run and
# source pages, the runs list, the CSV and the API use these words).
COUNTER_MEANINGS: dict[str, str] = {
    "seen": "records the source sent this run, skipped ones included",
    "created": "rows of the kinds this source keeps that the run added",
    "updated": "rows of those kinds whose content changed (or that came back)",
    "unchanged": "rows of those kinds the source sent again as they were (not rewritten)",
    "gone": "rows of those kinds the source no longer reports (marked, not deleted)",
    "errors": "records skipped, each with its reason below",
}


@dataclass
class Counts:
    """A run's counters (COUNTER_MEANINGS). Created, updated, unchanged and gone count
    rows of the kinds the connector owns (`Connector.owns`: for Kubernetes, deployments
    and identities), never the rows it makes on the side (an observed model for a name
    nobody registered), so running the same data again shows as many unchanged as the
    first run created."""

    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    errors: int = 0

    def copy(self) -> Counts:
        return Counts(**vars(self))


@dataclass
class PendingError:
    external_id: str
    reason: str
    excerpt: str = ""


class RowError(Exception):
    """A row that breaks a model's rules (too long, not a choice); it is skipped."""


@dataclass
class ApplyContext:
    source: sm.DataSource
    run: sm.SyncRun
    # The kinds of rows the connector owns: the ones the counters count (empty: all).
    owns: tuple[type[models.Model], ...] = ()
    started_at: datetime = field(default_factory=timezone.now)
    counts: Counts = field(default_factory=Counts)
    errors: list[PendingError] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Per-run caches: name -> id lookups a connector repeats across batches.
    cache: dict[str, dict[Any, Any]] = field(default_factory=dict)
    # Objects changed in the batch being applied, announced when it commits (`announce`).
    touched: set[tuple[str, int]] = field(default_factory=set)
    # Deployments and identities this run created: their first bindings are part of
    # their creation (named by the run's events), not history.
    created_ids: set[tuple[str, int]] = field(default_factory=set)
    # Ids of the rows this run reported, by model, from committed batches (what is not in
    # them is gone at the end); the batch being applied collects into `batch_seen`.
    seen: dict[type[models.Model], set[int]] = field(default_factory=dict)
    batch_seen: dict[type[models.Model], set[int]] = field(default_factory=dict)
    # Rows written, by table (inserted, updated, marked gone, bound): what a large run
    # vacuums afterwards when autovacuum is off (sources.sync.maintenance).
    written: dict[str, int] = field(default_factory=dict)
    _seen_refresh: timedelta | None = None

    @property
    def seen_refresh(self) -> timedelta:
        """How old an unchanged row's `seen_at` may grow before a run that reports it
        again writes it: settings.SYNC_SEEN_REFRESH_HOURS, at most a quarter of the
        policy's silent window. So an unchanged row is rewritten once in that time, not
        on every run, and a row the source still reports is never silent."""
        if self._seen_refresh is None:
            from inventory import selectors

            hours = min(
                float(settings.SYNC_SEEN_REFRESH_HOURS),
                selectors.policy_current().silent_after_hours / 4,
            )
            self._seen_refresh = timedelta(hours=hours)
        return self._seen_refresh

    @property
    def label(self) -> str:
        return self.source.source_label

    @property
    def dry_run(self) -> bool:
        return self.run.dry_run

    @property
    def actor(self) -> Actor:
        return Actor.source(self.label)

    # -- history, audit and the change queue ---------------------------------------------
    def record_history(self, deltas: list[history.Delta]) -> None:
        """History rows for governed fields this run changed (in the batch's transaction)."""
        if deltas:
            history.record_changes(
                deltas=deltas, actor=self.actor, source=self.label, run_id=self.run.pk
            )
            self.touched |= history.changed_objects(deltas)

    def announce(self) -> None:
        """Queue the batch's changed objects for governance; call inside its transaction."""
        if self.touched:
            history.announce(
                objects=self.touched, source=self.label, run_id=self.run.pk
            )
            self.touched.clear()

    # -- errors ----------------------------------------------------------------------
    def error(self, external_id: str, reason: str, excerpt: str = "") -> None:
        self.counts.errors += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append(PendingError(str(external_id)[:500], reason, excerpt))

    # -- a savepoint for the counters, for when a batch rolls back -------------------
    def mark(self) -> tuple[Counts, int, int]:
        return self.counts.copy(), len(self.errors), len(self.changes)

    def restore(self, mark: tuple[Counts, int, int]) -> None:
        counts, n_errors, n_changes = mark
        seen = self.counts.seen
        self.counts = counts
        self.counts.seen = seen
        del self.errors[n_errors:]
        del self.changes[n_changes:]
        self.touched.clear()  # rolled back with the batch, never announced
        self.batch_seen.clear()
        self.cache.clear()  # ids created in the rolled-back transaction are gone

    def wrote(self, model: type[models.Model], rows: int) -> None:
        if rows:
            table = model._meta.db_table
            self.written[table] = self.written.get(table, 0) + rows

    def mark_seen(self, model: type[models.Model], pks: Iterable[int]) -> None:
        """Rows of `model` this run reported (kept from being marked gone)."""
        self.batch_seen.setdefault(model, set()).update(pks)

    def batch_committed(self) -> None:
        """The batch being applied committed: what it reported counts as seen."""
        for model, pks in self.batch_seen.items():
            self.seen.setdefault(model, set()).update(pks)
        self.batch_seen.clear()

    def seen_ids(self, model: type[models.Model]) -> set[int]:
        return self.seen.get(model, set()) | self.batch_seen.get(model, set())

    def _note_change(self, action: str, model: type[models.Model], ext: str, **extra):
        if len(self.changes) < MAX_SAMPLE_CHANGES:
            self.changes.append(
                {
                    "action": action,
                    "kind": model._meta.verbose_name,
                    "external_id": ext,
                    **extra,
                }
            )

    # -- upserts -----------------------------------------------------------------------
    def upsert(
        self, model: type[models.Model], rows: Iterable[tuple[str, dict[str, Any]]]
    ) -> dict[str, int]:
        """Upsert `rows` of (external_id, fields) owned by this source; return ext -> pk.

        Rows that break the model's field rules are recorded as errors and left out of the
        result, so callers skip what depends on them.
        """
        by_ext: dict[str, dict[str, Any]] = {}
        for ext, fields in rows:
            try:
                by_ext[ext] = _checked(model, ext, fields)
            except RowError as exc:
                self.error(ext, str(exc))
        if not by_ext:
            return {}
        now = timezone.now()
        stored = {
            ext: (pk, content_hash, gone_at, seen_at)
            for ext, pk, content_hash, gone_at, seen_at in model._default_manager.filter(
                source=self.label, external_id__in=list(by_ext)
            ).values_list("external_id", "pk", "content_hash", "gone_at", "seen_at")
        }
        result: dict[str, int] = {}
        new: list[models.Model] = []
        changed: list[models.Model] = []
        unchanged: list[int] = []
        # Unchanged rows whose seen_at is older than `seen_refresh`: only that is written.
        reseen: list[int] = []
        reseen_before = now - self.seen_refresh
        names: set[str] = set()
        for ext, fields in by_ext.items():
            names.update(fields)
            content_hash = digest(fields)
            common = {
                "source": self.label,
                "external_id": ext,
                "content_hash": content_hash,
                "seen_at": now,
                "gone_at": None,
                **fields,
            }
            if ext not in stored:
                new.append(model(**common))
                self._note_change("created", model, ext)
                continue
            pk, old_hash, gone_at, seen_at = stored[ext]
            result[ext] = pk
            if old_hash == content_hash and gone_at is None:
                unchanged.append(pk)
                if seen_at is None or seen_at < reseen_before:
                    reseen.append(pk)
            else:
                changed.append(model(pk=pk, **common))
        if changed:
            self._record_updates(model, changed, names)
        # The dashboard's counts of their teams: recounted by beat or the next dashboard
        # read, not after each batch's commit (a recount can cost more than the batch).
        summary.mark_rows(model, new + changed, inline=False)
        update_fields = sorted(
            names | {"content_hash", "seen_at", "gone_at", "updated_at"}
        )
        if new:
            # ON CONFLICT keeps this idempotent even against a run that was presumed dead
            # and still wrote: the later write wins, nothing is duplicated.
            created = model._default_manager.bulk_create(
                new,
                update_conflicts=True,
                unique_fields=["source", "external_id"],
                update_fields=update_fields,
            )
            for obj in created:
                result[obj.external_id] = obj.pk
            if any(obj.pk is None for obj in created):  # a backend without RETURNING
                result.update(
                    model._default_manager.filter(
                        source=self.label, external_id__in=[o.external_id for o in new]
                    ).values_list("external_id", "pk")
                )
        if changed:
            for obj in changed:
                obj.updated_at = now
            model._default_manager.bulk_update(changed, update_fields, batch_size=500)
        # Unchanged rows are not rewritten: the run keeps their ids instead, to know at the
        # end what the source no longer reports. Only a `seen_at` older than
        # `seen_refresh` is moved (the silent rule reads it), in one UPDATE.
        if reseen:
            model._default_manager.filter(pk__in=reseen).update(seen_at=now)
            summary.mark_later(model, reseen)  # their silent day bucket moves
            self.wrote(model, len(reseen))
        self.mark_seen(model, result.values())
        if new:
            self._record_created(model, new, result)
        self.wrote(model, len(new) + len(changed))
        if not self.owns or model in self.owns:
            self.counts.created += len(new)
            self.counts.updated += len(changed)
            self.counts.unchanged += len(unchanged)
        return result

    def _record_created(
        self, model: type[models.Model], new: list[models.Model], ids: dict[str, int]
    ) -> None:
        """One audit event per batch naming what it created, and their notices."""
        label = model._meta.label_lower
        created = [
            {"id": ids[o.external_id], "external_id": o.external_id}
            for o in new
            if ids.get(o.external_id)
        ]
        self.touched |= {(label, row["id"]) for row in created}
        if model in (m.Deployment, m.NonHumanIdentity):
            self.created_ids |= {(label, row["id"]) for row in created}
        audit.record(
            actor=self.actor,
            action=f"{model._meta.model_name}.sync_create",
            target=self.source,
            after={"run": self.run.pk, "model": label, "created": created},
            team_id=self.source.team_id,
        )

    def _record_updates(
        self, model: type[models.Model], changed: list[models.Model], names: set[str]
    ) -> None:
        """Before the UPDATE: history rows, one audit event per changed object, notices
        and the run's sample of changes, from one read of the changed rows."""
        # Only what the source sent: a field it does not send keeps its stored value.
        attnames = sorted({model._meta.get_field(n).attname for n in names})
        team = _TEAM_PATH.get(model)
        extra_values: dict[str, Any] = {"team_of": models.F(team)} if team else {}
        if model is m.ModelVersion:  # its str() names the model: no query per event
            extra_values.update(
                model_of=models.F("model_id"), model_name_of=models.F("model__name")
            )
        before = {
            row["pk"]: row
            for row in model._default_manager.filter(pk__in=[o.pk for o in changed])
            .order_by()
            .values("pk", "gone_at", *attnames, **extra_values)
        }
        deltas: list[history.Delta] = []
        events: list[Change] = []
        for obj in changed:
            old = before.get(obj.pk, {})
            new_values = {a: getattr(obj, a) for a in attnames}
            deltas += history.diff_values(model, obj.pk, old, new_values)
            diff = {
                a: [_plain(old.get(a)), _plain(v)]
                for a, v in new_values.items()
                if _plain(old.get(a)) != _plain(v)
            }
            returned = bool(old.get("gone_at"))
            if not diff and not returned:
                # Only its digest moved (a value the sync does not write, such as an
                # approval the transition table refused): nothing changed to audit.
                continue
            if "model_name_of" in old:
                m.ModelVersion.model.field.set_cached_value(
                    obj, m.AIModel(pk=old["model_of"], name=old["model_name_of"])
                )
            events.append(
                Change(
                    action=f"{model._meta.model_name}.sync_update",
                    target=obj,
                    before=json_safe({a: old_new[0] for a, old_new in diff.items()}),
                    after=json_safe(
                        {
                            **{a: old_new[1] for a, old_new in diff.items()},
                            "run": self.run.pk,
                            **({"returned": True} if returned else {}),
                        }
                    ),
                    team_id=old.get("team_of"),
                )
            )
            if len(self.changes) < MAX_SAMPLE_CHANGES:
                extra: dict[str, Any] = {"fields": diff}
                if returned:
                    extra["returned"] = True
                self._note_change("updated", model, obj.external_id, **extra)
        self.record_history(deltas)
        self.touched |= {(model._meta.label_lower, o.pk) for o in changed}
        audit.record_many(actor=self.actor, changes=events)

    def bind(
        self,
        identity_ids: Iterable[int],
        deployment_ids_by_identity: dict[int, set[int]],
    ) -> None:
        """Make the synced identities' bindings exactly what the source says."""
        through = m.NonHumanIdentity.deployments.through
        identity_ids = list(identity_ids)
        if not identity_ids:
            return
        current: dict[int, set[int]] = {}
        for ident, dep in through.objects.filter(
            nonhumanidentity_id__in=identity_ids
        ).values_list("nonhumanidentity_id", "deployment_id"):
            current.setdefault(ident, set()).add(dep)
        add = []
        moved: dict[int, tuple[set[int], set[int]]] = {}
        for ident in identity_ids:
            wanted = deployment_ids_by_identity.get(ident, set())
            have = current.get(ident, set())
            if wanted != have:
                moved[ident] = (have, set(wanted))
            add += [
                through(nonhumanidentity_id=ident, deployment_id=d)
                for d in wanted - have
            ]
            if have - wanted:  # one DELETE per identity that lost bindings
                through.objects.filter(
                    nonhumanidentity_id=ident, deployment_id__in=have - wanted
                ).delete()
                self.wrote(through, len(have - wanted))
        if add:
            through.objects.bulk_create(add, ignore_conflicts=True)
            self.wrote(through, len(add))
        # Bound to a retired model: their counts move (recounted as above).
        summary.mark_objects(m.NonHumanIdentity, moved, inline=False)
        if moved:
            self._record_bindings(moved)

    def _record_bindings(self, moved: dict[int, tuple[set[int], set[int]]]) -> None:
        """History on both sides, except of objects this run created; one audit event
        per existing identity whose bindings moved, and one naming new identities' ones."""
        self.record_history(history.binding_deltas(moved, skip=self.created_ids))
        new_ones = {
            str(ident): sorted(
                after
            )  # JSON keys are text: the stored event hashes alike
            for ident, (_, after) in sorted(moved.items())
            if (history.IDENTITY, ident) in self.created_ids
        }
        existing = {i: v for i, v in moved.items() if str(i) not in new_ones}
        events = []
        if new_ones:
            events.append(
                Change(
                    action="nonhumanidentity.sync_bind_new",
                    target=self.source,
                    after={"run": self.run.pk, "bindings": new_ones},
                    team_id=self.source.team_id,
                )
            )
        names, teams = {}, {}
        if existing:
            for pk, name, team_id in m.NonHumanIdentity.objects.filter(
                pk__in=list(existing)
            ).values_list("pk", "name", "team_id"):
                names[pk], teams[pk] = name, team_id
        events += [
            Change(
                action="nonhumanidentity.sync_bind",
                target=m.NonHumanIdentity(pk=ident, name=names.get(ident, "")),
                before={"deployments": sorted(old)},
                after={"deployments": sorted(new), "run": self.run.pk},
                team_id=teams.get(ident),
            )
            for ident, (old, new) in sorted(existing.items())
        ]
        audit.record_many(actor=self.actor, changes=events)

    # -- lookups shared by connectors --------------------------------------------------
    def model_ids_by_name(self, names: Iterable[str]) -> dict[str, int]:
        """Models by name, from any source (a registry's model is the one runtimes name).

        When two models share a name, the one not gone and most recently seen wins.
        """
        cache = self.cache.setdefault("model_by_name", {})
        missing = {n for n in names if n and n not in cache}
        if missing:
            rows = (
                m.AIModel.objects.filter(name__in=missing)
                .order_by("name", models.F("gone_at").asc(nulls_first=True), "-id")
                .values_list("name", "pk")
            )
            for name, pk in rows:
                cache.setdefault(name, pk)
            for name in missing:
                cache.setdefault(name, None)
        return {n: cache[n] for n in names if n and cache.get(n)}

    def ensure_models(
        self, names: Iterable[str], defaults: dict[str, Any] | None = None
    ) -> dict[str, int]:
        """Models by name; a name nobody registered becomes an observed model of this source."""
        names = {n for n in names if n}
        found = self.model_ids_by_name(names)
        unknown = sorted(names - set(found))
        if unknown:
            created = self.upsert(
                m.AIModel,
                [
                    (
                        f"model:{name}",
                        {
                            "name": name,
                            "lifecycle": m.AIModel.Lifecycle.ACTIVE,
                            "description": "Observed at runtime; not in any registry.",
                            **(defaults or {}),
                        },
                    )
                    for name in unknown
                ],
            )
            cache = self.cache.setdefault("model_by_name", {})
            for name in unknown:
                pk = created.get(f"model:{name}")
                if pk:
                    cache[name] = pk
                    found[name] = pk
        return found

    def version_ids(
        self, pairs: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], int]:
        """Versions by (model id, version string), cached for the run.

        Two IN lists return a small superset, filtered here: one OR term per pair costs
        more to compile than to run for a thousand pairs (1.8 s of a 13 s re-sync of
        20,000 Kubernetes objects) and nears SQLite's expression depth limit.
        """
        cache = self.cache.setdefault("version", {})
        pairs = {p for p in pairs if p[0] and p[1]}
        missing = [p for p in pairs if p not in cache]
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            for pair in part:
                cache[pair] = None
            for model_id, version, pk in (
                m.ModelVersion.objects.filter(
                    model_id__in={p[0] for p in part}, version__in={p[1] for p in part}
                )
                .order_by()  # the default ordering joins the model table for nothing
                .values_list("model_id", "version", "pk")
            ):
                if (model_id, version) in cache:
                    cache[(model_id, version)] = pk
        return {p: cache[p] for p in pairs if cache.get(p)}

    def deployment_ids_by_name(self, names: Iterable[str]) -> dict[str, int]:
        cache = self.cache.setdefault("deployment_by_name", {})
        missing = {n for n in names if n and n not in cache}
        if missing:
            for name, pk in (
                m.Deployment.objects.filter(name__in=missing, gone_at__isnull=True)
                .order_by("name", "-id")
                .values_list("name", "pk")
            ):
                cache.setdefault(name, pk)
            for name in missing:
                cache.setdefault(name, None)
        return {n: cache[n] for n in names if n and cache.get(n)}

    def team_id(self) -> int | None:
        return self.source.team_id


# Where a row's owning team is, for the audit event's team.
_TEAM_PATH: dict[type[models.Model], str] = {
    m.AIModel: "team_id",
    m.ModelVersion: "model__team_id",
    m.System: "team_id",
    m.Deployment: "team_id",
    m.NonHumanIdentity: "team_id",
}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _checked(model: type[models.Model], ext: str, fields: dict[str, Any]) -> dict:
    """Reject what the database would refuse or silently mangle, naming the field."""
    if not ext:
        raise RowError("The record has no identifier.")
    if len(ext) > 500:
        raise RowError("The record's identifier is longer than 500 characters.")
    for name, value in fields.items():
        f = model._meta.get_field(name)
        if value is None:
            if not f.null:
                raise RowError(f"{f.verbose_name} is missing.")
            continue
        if isinstance(f, models.CharField) and not isinstance(f, models.SlugField):
            if not isinstance(value, str):
                raise RowError(f"{f.verbose_name} is not text: {value!r:.80}")
            if f.max_length and len(value) > f.max_length:
                raise RowError(
                    f"{f.verbose_name} is longer than {f.max_length} characters."
                )
            if "\x00" in value:
                raise RowError(f"{f.verbose_name} contains a NUL character.")
            if f.choices and value not in {c[0] for c in f.flatchoices}:
                raise RowError(f"{f.verbose_name} {value!r} is not one of the choices.")
        elif isinstance(f, models.DateTimeField) and (
            not isinstance(value, datetime) or timezone.is_naive(value)
        ):
            raise RowError(f"{f.verbose_name} is not a time with a zone.")
    return fields
