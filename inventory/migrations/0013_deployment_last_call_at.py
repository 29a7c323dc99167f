"""Deployment.last_call_at, the latest call telemetry reported, and the indexes the list's
sorts on last call, owner and team read (NULLS FIRST on PostgreSQL: NullsFirstIndex).

Calls recorded before this migration only survive as hourly usage rows: their deployments
get the start of their latest usage hour (the call happened within that hour).
"""

import inventory.models
from django.conf import settings
from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery


def backfill(apps, schema_editor):
    Deployment = apps.get_model("inventory", "Deployment")
    UsageHour = apps.get_model("inventory", "UsageHour")
    latest = (
        UsageHour.objects.filter(deployment_id=OuterRef("pk"))
        .order_by()
        .values("deployment_id")
        .annotate(last=Max("hour"))
        .values("last")
    )
    called = UsageHour.objects.values("deployment_id")
    Deployment.objects.filter(pk__in=called).update(last_call_at=Subquery(latest))


class Migration(migrations.Migration):

    dependencies = [
        ('inventory', '0012_merge_baseline_policy_and_history'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='deployment',
            name='last_call_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='deployment',
            index=inventory.models.NullsFirstIndex(fields=['last_call_at', 'id'], name='deployment_last_call_id'),
        ),
        migrations.AddIndex(
            model_name='deployment',
            index=inventory.models.NullsFirstIndex(fields=['owner', 'id'], name='deployment_owner_id'),
        ),
        migrations.AddIndex(
            model_name='deployment',
            index=inventory.models.NullsFirstIndex(fields=['team', 'id'], name='deployment_team_id'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
