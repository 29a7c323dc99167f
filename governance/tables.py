"""The audit log table. Rows arrive already filtered and keyset-paginated (see views)."""

from __future__ import annotations

import django_tables2 as tables
from django.utils.html import format_html

from audit.models import AuditEvent
from inventory.tables import KeysetTable, WhenColumn


class AuditEventTable(KeysetTable):
    seq = tables.Column(verbose_name="#", orderable=True)
    occurred_at = WhenColumn(verbose_name="When (UTC)", fmt="%Y-%m-%d %H:%M:%S")
    actor_label = tables.Column(verbose_name="Actor")
    action = tables.Column()
    object_repr = tables.Column(verbose_name="Object", empty_values=())
    ip_address = tables.Column(verbose_name="IP")

    class Meta(KeysetTable.Meta):
        model = AuditEvent
        fields = (
            "seq",
            "occurred_at",
            "actor_label",
            "action",
            "object_repr",
            "ip_address",
        )
        attrs = {
            **KeysetTable.Meta.attrs,
            "data-testid": "audit-table",
        }

    def render_seq(self, record: AuditEvent) -> str:
        return format_html(
            '<a href="{}">#{}</a>',
            self.urls.path("governance:audit_detail", record.seq),
            record.seq,
        )

    def render_action(self, value: str) -> str:
        return format_html("<code>{}</code>", value)

    def render_object_repr(self, record: AuditEvent) -> str:
        return format_html(
            '{} <span class="small text-body-secondary">{} #{}</span>',
            record.object_repr,
            record.object_type,
            record.object_id,
        )
