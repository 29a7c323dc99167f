"""The sources app takes over its tables from inventory by name only (db_table)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ["datasource", "syncrun", "syncerror", "deploymentevent", "importedfile"]


def content_types_follow(apps, schema_editor):
    """Existing permissions and admin log entries follow the models to their new app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="inventory", model__in=MOVED).update(
        app_label="sources"
    )


def content_types_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="sources", model__in=MOVED).update(
        app_label="inventory"
    )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('inventory', '0010_sources_move_to_sources_app'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables stay where they are (db_table); only Django's idea of the app moves.
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='DataSource',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('name', models.CharField(max_length=200, unique=True)),
                        ('kind', models.CharField(choices=[('mlflow', 'MLflow Model Registry'), ('otlp', 'OpenTelemetry traces (OTLP)'), ('kubernetes', 'Kubernetes (Deployments, KServe, Seldon)'), ('aws_iam', 'AWS IAM credential report'), ('vault', 'HashiCorp Vault / OpenBao tokens'), ('gcp_keys', 'GCP service-account keys (JSON export)'), ('github_tokens', 'GitHub tokens and OAuth apps (JSON export)'), ('cicd', 'CI/CD deployment events')], db_index=True, max_length=30)),
                        ('enabled', models.BooleanField(default=True)),
                        ('config', models.JSONField(blank=True, default=dict, help_text='Settings that may be shown back.')),
                        ('secrets_encrypted', models.TextField(blank=True, editable=False)),
                        ('schedule_minutes', models.PositiveIntegerField(default=60, help_text='Minutes between scheduled syncs; 0 syncs only on demand (or on push).')),
                        ('health', models.CharField(choices=[('unknown', 'Not synced yet'), ('healthy', 'Healthy'), ('degraded', 'Degraded (records skipped)'), ('failing', 'Failing')], db_index=True, default='unknown', max_length=20)),
                        ('last_run_at', models.DateTimeField(blank=True, null=True)),
                        ('last_success_at', models.DateTimeField(blank=True, null=True)),
                        ('last_error_at', models.DateTimeField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('team', models.ForeignKey(blank=True, help_text='Team given to new records this source brings in, if any.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='sources', to='inventory.team')),
                    ],
                    options={
                        'db_table': 'inventory_datasource',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='DeploymentEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('received_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('model_name', models.CharField(max_length=200)),
                        ('version', models.CharField(max_length=100)),
                        ('environment', models.CharField(max_length=20)),
                        ('endpoint', models.CharField(max_length=500)),
                        ('deployment_name', models.CharField(blank=True, max_length=200)),
                        ('commit', models.CharField(blank=True, max_length=100)),
                        ('pipeline', models.CharField(blank=True, max_length=200)),
                        ('pipeline_run', models.CharField(blank=True, max_length=500)),
                        ('deployed_at', models.DateTimeField(blank=True, null=True)),
                        ('idempotency_key', models.CharField(blank=True, default='', help_text="The sender's Idempotency-Key, or a digest of pipeline run, model, version and environment: the same event sent twice is recorded once.", max_length=200)),
                        ('deployment', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='inventory.deployment')),
                        ('model_version', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='inventory.modelversion')),
                        ('sent_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deployment_events', to='inventory.nonhumanidentity')),
                    ],
                    options={
                        'db_table': 'inventory_deploymentevent',
                        'ordering': ['-received_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='SyncRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('partial', 'Succeeded, records skipped'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', max_length=20)),
                        ('trigger', models.CharField(choices=[('schedule', 'Schedule'), ('manual', 'Sync now'), ('webhook', 'Webhook'), ('api', 'API'), ('command', 'Command'), ('upload', 'Uploaded file'), ('retry', 'Retry')], max_length=20)),
                        ('dry_run', models.BooleanField(default=False)),
                        ('requested_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('not_before', models.DateTimeField(default=django.utils.timezone.now, help_text='A retry waits until then (backoff).')),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                        ('send_count', models.PositiveIntegerField(default=0)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('attempt', models.PositiveIntegerField(default=0, help_text='Times a worker claimed this run.')),
                        ('retry_number', models.PositiveIntegerField(default=0)),
                        ('upload', models.FileField(blank=True, upload_to='source-uploads/%Y/%m/')),
                        ('phase', models.CharField(blank=True, max_length=40)),
                        ('expected', models.PositiveIntegerField(blank=True, help_text="Records expected (the last run's count).", null=True)),
                        ('seen', models.PositiveIntegerField(default=0)),
                        ('created', models.PositiveIntegerField(default=0)),
                        ('updated', models.PositiveIntegerField(default=0)),
                        ('unchanged', models.PositiveIntegerField(default=0)),
                        ('gone', models.PositiveIntegerField(default=0)),
                        ('errors', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True, help_text='Why the run failed, if it did.')),
                        ('changes', models.JSONField(blank=True, default=list, help_text='A sample of what changed (or would).')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('retry_of', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='sources.syncrun')),
                        ('source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='sources.datasource')),
                    ],
                    options={
                        'db_table': 'inventory_syncrun',
                        'ordering': ['-requested_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='SyncError',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('external_id', models.CharField(blank=True, max_length=500)),
                        ('reason', models.TextField()),
                        ('excerpt', models.TextField(blank=True, help_text='The start of the record as sent.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='error_rows', to='sources.syncrun')),
                    ],
                    options={
                        'db_table': 'inventory_syncerror',
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='ImportedFile',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('sha256', models.CharField(max_length=64)),
                        ('imported_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='imported_files', to='sources.datasource')),
                        ('run', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='sources.syncrun')),
                    ],
                    options={
                        'db_table': 'inventory_importedfile',
                    },
                ),
                migrations.AddIndex(
                    model_name='datasource',
                    index=models.Index(fields=['name', 'id'], name='datasource_name_id'),
                ),
                migrations.AddConstraint(
                    model_name='deploymentevent',
                    constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True), fields=('idempotency_key',), name='deploymentevent_idempotency_key'),
                ),
                migrations.AddIndex(
                    model_name='syncrun',
                    index=models.Index(fields=['source', '-requested_at'], name='syncrun_source_time'),
                ),
                migrations.AddIndex(
                    model_name='syncrun',
                    index=models.Index(fields=['status', 'not_before'], name='syncrun_status_due'),
                ),
                migrations.AddIndex(
                    model_name='syncrun',
                    index=models.Index(fields=['requested_at', 'id'], name='syncrun_requested_id'),
                ),
                migrations.AddConstraint(
                    model_name='syncrun',
                    constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['queued', 'running'])), fields=('source', 'dry_run'), name='syncrun_one_active_per_source'),
                ),
                migrations.AddConstraint(
                    model_name='importedfile',
                    constraint=models.UniqueConstraint(fields=('source', 'sha256'), name='importedfile_once_per_source'),
                ),
            ],
        ),
        migrations.RunPython(content_types_follow, content_types_return),
    ]
