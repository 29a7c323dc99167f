"""The append-only, hash-chained audit trail, below every other app.

The tables were created by the governance app and keep their names (`db_table`), so the
PostgreSQL append-only triggers and every stored hash stay as they are.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One governance action. Append-only: each event holds the hash of the one before.

    No foreign keys: an event outlives the user and the object it names, and a cascade must
    never reach this table (on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE).
    """

    seq = models.BigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(
        default=timezone.now, db_index=True, editable=False
    )
    actor_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, editable=False
    )
    actor_label = models.CharField(
        max_length=200, editable=False, help_text="Username, token or 'system'."
    )
    # NULL on events written before actor kinds existed (canonical form 1); set on every
    # later one, and then part of the hashed text (canonical form 2). See audit.chain.
    actor_kind = models.CharField(
        max_length=10, null=True, blank=True, editable=False, db_index=False
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True, editable=False)
    action = models.CharField(max_length=100, db_index=True, editable=False)
    object_type = models.CharField(max_length=100, db_index=True, editable=False)
    object_id = models.CharField(max_length=64, editable=False)
    object_repr = models.CharField(max_length=300, editable=False)
    team_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, editable=False
    )
    before = models.JSONField(null=True, blank=True, editable=False)
    after = models.JSONField(null=True, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        db_table = "governance_auditevent"
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            # An owner's audit list: their teams' and their own events, newest first.
            models.Index(fields=["team_id", "seq"], name="audit_team_seq"),
            models.Index(fields=["actor_id", "seq"], name="audit_actor_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_repr}"


class AuditChainHead(models.Model):
    """The single row appenders lock, so events get one total order on every database."""

    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "governance_auditchainhead"

    def __str__(self) -> str:
        return f"head at #{self.seq}"


class AuditCheckpoint(models.Model):
    """A signed picture of the chain's head, taken hourly by Celery beat.

    An attacker who rewrites events and recomputes every later hash still cannot forge the
    HMAC of a checkpoint without the checkpoint key, so `verify_audit` catches that too.
    """

    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    taken_at = models.DateTimeField(default=timezone.now)
    signature = models.CharField(max_length=64)

    class Meta:
        db_table = "governance_auditcheckpoint"
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"
