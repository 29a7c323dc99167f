"""Trigram indexes for the lists' free-text search (issue 9, item 8), on PostgreSQL only.

The search (inventory.querysets.search_q) filters `UPPER(column) LIKE UPPER('%term%')`, one
branch per searched column. One GIN index per table holds `UPPER(column) gin_trgm_ops` for
each column that table's list searches, so every branch of the OR is a bitmap index scan.
Keep these columns equal to the filters' `search_fields` (inventory/filters.py); the test
tests/inventory/test_search.py checks the plans on PostgreSQL.

pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it; if the
migrating role may not, create it beforehand (`CREATE EXTENSION pg_trgm;` as a superuser),
and this migration finds it there. On SQLite (the embedded default) nothing is created and
the search scans.
"""

from django.db import migrations

APP = "inventory"
# (model, index name, searched columns); a column across a foreign key (model__name) is
# searched in the related table's own index.
SEARCH_INDEXES = (
    ("team", "team_search_trgm", ("name", "description")),
    ("aimodel", "aimodel_search_trgm", ("name", "description", "provider", "external_id")),
    ("modelversion", "modelversion_search_trgm", ("version", "artifact_uri", "digest")),
    ("system", "system_search_trgm", ("name", "description", "business_purpose")),
    (
        "deployment",
        "deployment_search_trgm",
        ("name", "endpoint", "platform_locator", "business_purpose"),
    ),
    ("nonhumanidentity", "nhi_search_trgm", ("name", "external_id", "vendor", "provider")),
)


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
        ("inventory", "0012_merge_baseline_policy_and_history"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
