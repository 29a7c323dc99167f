"""A trigram index for the audit log's search by object name (issue 9, item 8), on
PostgreSQL only. The same shape as inventory 0013 (see there): `UPPER(object_repr)
gin_trgm_ops`, the expression Django's icontains filters on; pg_trgm is created if missing;
nothing on SQLite. The audit table only grows, so its search is the one that most needs it.
"""

from django.db import migrations

APP = "audit"
SEARCH_INDEXES = (("auditevent", "auditevent_search_trgm", ("object_repr",)),)


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        installed = cursor.fetchone() is not None
    if not installed:
        # Needs the right to create a trusted extension (the database's owner has it).
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    quote = schema_editor.quote_name
    for model_name, name, columns in SEARCH_INDEXES:
        table = apps.get_model(APP, model_name)._meta.db_table
        # UPPER(column): the expression Django's icontains filters on, so the index answers it.
        expressions = ", ".join(f"UPPER({quote(c)}) gin_trgm_ops" for c in columns)
        schema_editor.execute(
            f"CREATE INDEX {quote(name)} ON {quote(table)} USING gin ({expressions})"
        )
        # Statistics on the new expressions, so the planner knows how many rows a term
        # matches (whether to use the index or walk the list's order) from the start.
        schema_editor.execute(f"ANALYZE {quote(table)}")


def drop_indexes(apps, schema_editor):
    # The extension stays: something else in the database may use it.
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, name, _ in SEARCH_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_auditevent_add_actor_kind"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
