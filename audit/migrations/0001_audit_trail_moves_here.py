"""The audit trail's tables move from governance to this app by name only (db_table)."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("governance", "0003_auditevent_owner_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables stay where they are (db_table); only Django's idea of the app moves.
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='AuditChainHead',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('seq', models.BigIntegerField(default=0)),
                        ('last_hash', models.CharField(default='0000000000000000000000000000000000000000000000000000000000000000', max_length=64)),
                    ],
                    options={
                        'db_table': 'governance_auditchainhead',
                    },
                ),
                migrations.CreateModel(
                    name='AuditCheckpoint',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('seq', models.BigIntegerField()),
                        ('hash', models.CharField(max_length=64)),
                        ('taken_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('signature', models.CharField(max_length=64)),
                    ],
                    options={
                        'db_table': 'governance_auditcheckpoint',
                        'ordering': ['-seq'],
                    },
                ),
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('seq', models.BigIntegerField(editable=False, unique=True)),
                        ('occurred_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False)),
                        ('actor_id', models.BigIntegerField(blank=True, db_index=True, editable=False, null=True)),
                        ('actor_label', models.CharField(editable=False, help_text="Username, token or 'system'.", max_length=200)),
                        ('ip_address', models.GenericIPAddressField(blank=True, editable=False, null=True)),
                        ('action', models.CharField(db_index=True, editable=False, max_length=100)),
                        ('object_type', models.CharField(db_index=True, editable=False, max_length=100)),
                        ('object_id', models.CharField(editable=False, max_length=64)),
                        ('object_repr', models.CharField(editable=False, max_length=300)),
                        ('team_id', models.BigIntegerField(blank=True, db_index=True, editable=False, null=True)),
                        ('before', models.JSONField(blank=True, editable=False, null=True)),
                        ('after', models.JSONField(blank=True, editable=False, null=True)),
                        ('prev_hash', models.CharField(editable=False, max_length=64)),
                        ('hash', models.CharField(editable=False, max_length=64, unique=True)),
                    ],
                    options={
                        'db_table': 'governance_auditevent',
                        'ordering': ['-seq'],
                        'indexes': [models.Index(fields=['object_type', 'object_id'], name='audit_object'), models.Index(fields=['team_id', 'seq'], name='audit_team_seq'), models.Index(fields=['actor_id', 'seq'], name='audit_actor_seq')],
                    },
                ),
            ],
        ),
    ]
