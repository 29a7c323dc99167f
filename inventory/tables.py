"""List tables. Rows arrive already sorted and paginated (see pagination.py); the table renders."""

from __future__ import annotations

import datetime as dt

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django_tables2.utils import OrderBy, OrderByTuple

from inventory import models as m
from inventory import source_names
from inventory.templatetags.runproof import status_badge


class KeysetTable(tables.Table):
    """A table over one keyset page: it shows the sort state but never re-sorts the rows."""

    class Meta:
        template_name = "django_tables2/runproof_table.html"
        attrs = {"class": "table table-sm table-hover align-middle"}
        orderable = False  # per column, and only for indexed, non-null fields

    def __init__(self, *args, page=None, **kwargs) -> None:
        self.keyset_page = page
        super().__init__(*args, **kwargs)

    @tables.Table.order_by.setter
    def order_by(self, value) -> None:
        value = value or ()
        value = value.split(",") if isinstance(value, str) else value
        self._order_by = OrderByTuple(
            [
                v
                for v in value
                if OrderBy(v).bare in self.columns
                and self.columns[OrderBy(v).bare].orderable
            ]
        )


def _badge(text: str, tone: str) -> str:
    return format_html(
        '<span class="badge text-bg-{} badge-flag">{}</span>', tone, text
    )


class WhenColumn(tables.Column):
    """A UTC timestamp. Cheaper than DateTimeColumn, which renders a template per cell."""

    def __init__(self, *args, fmt: str = "%Y-%m-%d %H:%M", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fmt = fmt

    def render(self, value):
        return value.astimezone(dt.UTC).strftime(self.fmt)


class SourceColumn(tables.Column):
    """Where a row came from (a data source, linked, or typed in) and whether its source
    stopped reporting it. Source names are read once per table, and only if a row needs one."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("verbose_name", "Source")
        super().__init__(accessor="source", empty_values=(), orderable=False, **kwargs)

    def render(self, record, table):
        label = record.source
        if label == m.MANUAL_SOURCE:
            cell = mark_safe('<span class="text-body-secondary">typed in</span>')  # noqa: S308
        else:
            names = getattr(table, "_source_names", None)
            if names is None:
                names = table._source_names = source_names.names()
            kind, _, pk = label.partition(":")
            if label in names and pk.isdigit():
                cell = format_html(
                    '<a href="{}">{}</a>',
                    reverse("sources:source_detail", args=[int(pk)]),
                    names[label],
                )
            else:
                cell = format_html("<code>{}</code>", label)
        if record.gone_at is not None:
            return format_html(
                '{} <span class="badge text-bg-secondary" title="Gone since {}">gone</span>',
                cell,
                record.gone_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            )
        return cell


class StatusColumn(tables.Column):
    """A choice field as a coloured badge; tables2 hands render() the display text."""

    def render(self, value, record, bound_column):
        return status_badge(getattr(record, bound_column.name), value)


class TeamTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    description = tables.Column(orderable=False)

    class Meta(KeysetTable.Meta):
        model = m.Team
        fields = ("name", "description")


class AIModelTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column()
    provider = tables.Column()
    lifecycle = StatusColumn()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=(), verbose_name="Owner")
    source = SourceColumn()
    updated_at = WhenColumn(
        orderable=True,
        verbose_name="Updated",
    )

    class Meta(KeysetTable.Meta):
        model = m.AIModel
        fields = (
            "name",
            "kind",
            "provider",
            "lifecycle",
            "team",
            "owner",
            "source",
            "updated_at",
        )

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )


class ModelVersionTable(KeysetTable):
    model = tables.Column(linkify=True)
    version = tables.Column(linkify=True, orderable=True)
    approval = StatusColumn()
    digest = tables.Column()
    approved_at = WhenColumn(fmt="%Y-%m-%d")
    created_at = WhenColumn(orderable=True, verbose_name="Registered", fmt="%Y-%m-%d")
    source = SourceColumn()

    class Meta(KeysetTable.Meta):
        model = m.ModelVersion
        fields = (
            "model",
            "version",
            "approval",
            "digest",
            "approved_at",
            "created_at",
            "source",
        )

    def render_digest(self, value):
        return format_html(
            "<code>{}</code>", value[:19] + ("…" if len(value) > 19 else "")
        )


class SystemTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=())
    business_purpose = tables.Column(verbose_name="Purpose")

    class Meta(KeysetTable.Meta):
        model = m.System
        fields = ("name", "kind", "team", "owner", "business_purpose")

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )

    def render_business_purpose(self, value):
        return value[:80] + ("…" if len(value) > 80 else "")


class DeploymentTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    model = tables.Column(linkify=True)
    observed_version = tables.Column(verbose_name="Running", empty_values=())
    environment = tables.Column(orderable=True)
    exposure = tables.Column()
    flags = tables.Column(empty_values=(), verbose_name="Risk flags")
    status = StatusColumn()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=())
    source = SourceColumn()
    last_seen_at = WhenColumn(
        orderable=True,
        verbose_name="Last seen",
    )

    class Meta(KeysetTable.Meta):
        model = m.Deployment
        fields = (
            "name",
            "model",
            "observed_version",
            "environment",
            "exposure",
            "flags",
            "status",
            "team",
            "owner",
            "source",
            "last_seen_at",
        )

    def render_observed_version(self, record):
        if record.observed_version is None:
            if record.observed_version_label:
                # The runtime names a version the registry does not have.
                return format_html(
                    "{} {}",
                    record.observed_version_label,
                    _badge("unregistered", "warning"),
                )
            return "—"
        text = record.observed_version.version
        if record.version_drift:
            return format_html("{} {}", text, _badge("drift", "warning"))
        return text

    def render_flags(self, record):
        flags = []
        if record.exposure == m.Deployment.Exposure.EXTERNAL:
            flags.append(_badge("external", "danger"))
        if record.write_access:
            flags.append(_badge("write", "warning"))
        if record.decision_making:
            flags.append(_badge("decides", "primary"))
        return format_html(" ".join(["{}"] * len(flags)), *flags) if flags else "—"

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )


class IdentityTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column()
    provider = tables.Column()
    status = StatusColumn()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=())
    issued_at = WhenColumn(verbose_name="Issued", fmt="%Y-%m-%d")
    last_used_at = WhenColumn(verbose_name="Last used", fmt="%Y-%m-%d")
    expires_at = WhenColumn(verbose_name="Expires", fmt="%Y-%m-%d")
    source = SourceColumn()
    updated_at = WhenColumn(
        orderable=True,
        verbose_name="Updated",
    )

    class Meta(KeysetTable.Meta):
        model = m.NonHumanIdentity
        fields = (
            "name",
            "kind",
            "provider",
            "status",
            "team",
            "owner",
            "issued_at",
            "last_used_at",
            "expires_at",
            "source",
            "updated_at",
        )

    def render_owner(self, record):
        if record.owner:
            return record.owner.get_username()
        # The ownerless rule (querysets.ownerless_q): a team alone is not an accountable person.
        return _badge("no owner", "danger")
