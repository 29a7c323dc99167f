"""The audit trail moves to the audit app; its tables stay (see audit 0001)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0003_auditevent_owner_indexes'),
        ('audit', '0001_audit_trail_moves_here'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables stay where they are (db_table); only Django's idea of the app moves.
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(
                    name='AuditChainHead',
                ),
                migrations.DeleteModel(
                    name='AuditCheckpoint',
                ),
                migrations.DeleteModel(
                    name='AuditEvent',
                ),
            ],
        ),
    ]
