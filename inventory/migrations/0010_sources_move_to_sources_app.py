"""Sources, runs, sync errors, deployment events and imported files move to the sources
app by name only: the tables keep their names (db_table), no row is copied."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('inventory', '0009_syncrun_requested_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The tables stay where they are (db_table); only Django's idea of the app moves.
            database_operations=[],
            state_operations=[
                migrations.RemoveField(
                    model_name='syncrun',
                    name='source',
                ),
                migrations.RemoveField(
                    model_name='importedfile',
                    name='source',
                ),
                migrations.RemoveField(
                    model_name='deploymentevent',
                    name='deployment',
                ),
                migrations.RemoveField(
                    model_name='deploymentevent',
                    name='model_version',
                ),
                migrations.RemoveField(
                    model_name='deploymentevent',
                    name='sent_by',
                ),
                migrations.RemoveField(
                    model_name='importedfile',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='syncerror',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='syncrun',
                    name='requested_by',
                ),
                migrations.RemoveField(
                    model_name='syncrun',
                    name='retry_of',
                ),
                migrations.DeleteModel(
                    name='DataSource',
                ),
                migrations.DeleteModel(
                    name='DeploymentEvent',
                ),
                migrations.DeleteModel(
                    name='ImportedFile',
                ),
                migrations.DeleteModel(
                    name='SyncError',
                ),
                migrations.DeleteModel(
                    name='SyncRun',
                ),
            ],
        ),
    ]
