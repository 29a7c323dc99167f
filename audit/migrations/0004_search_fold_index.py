"""The audit log's trigram index rebuilt on `runproof_fold` (inventory 0021, which creates
it; see there for why), PostgreSQL only."""

from django.db import migrations

APP = "audit"
SEARCH_INDEXES = (("auditevent", "auditevent_search_trgm", ("object_repr",)),)


def rebuild(apps, schema_editor, fold):
    quote = schema_editor.quote_name
    for model_name, name, columns in SEARCH_INDEXES:
        table = apps.get_model(APP, model_name)._meta.db_table
        expressions = ", ".join(f"{fold}({quote(c)}) gin_trgm_ops" for c in columns)
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
        schema_editor.execute(
            f"CREATE INDEX {quote(name)} ON {quote(table)} USING gin ({expressions})"
        )
        schema_editor.execute(f"ANALYZE {quote(table)}")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        rebuild(apps, schema_editor, "runproof_fold")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        rebuild(apps, schema_editor, "UPPER")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_search_trigram_index"),
        ("inventory", "0021_search_fold_function"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
