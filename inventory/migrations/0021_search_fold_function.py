"""The lists' search folds case with `runproof_fold(text)`, a function of our own priced as
what it costs, and the trigram indexes of 0013 are rebuilt on it (PostgreSQL only).

Why (inventory.querysets.SearchContains): upper() is priced at one operator cost, so the
planner took a Seq Scan testing four columns a row for cheaper than the trigram indexes
whenever ANALYZE's sample put a term's matches high (the deployments' count: 250-330 ms
instead of ~50 ms). `runproof_fold` is upper() in PL/pgSQL (a LANGUAGE sql function would
be inlined into upper() and its COST ignored), IMMUTABLE so indexes may hold it, COST 100 as
measured (see SearchContains), and PARALLEL RESTRICTED: priced as it costs, a count or a
51-row page otherwise went to parallel workers, slower (the deployments' count 44 against
30 ms, the identities' page 106 against 51 ms on the bench's database): what a search reads
is bounded (LIMIT 51, a count capped at 10,001), worker start-up is not worth it.

Each index keeps its name and columns; it is dropped and built again on the new expression,
in the migration's transaction, as 0013 built it (not CONCURRENTLY: the tables are locked
against writes while it builds, seconds at the bench's full scale). Reversing builds the
UPPER() indexes back and drops the function. On SQLite nothing happens.
"""

from django.db import migrations

APP = "inventory"
FOLD = "runproof_fold"
# (model, index name, searched columns): the same as 0013's.
SEARCH_INDEXES = (
    ("team", "team_search_trgm", ("name", "description")),
    (
        "aimodel",
        "aimodel_search_trgm",
        ("name", "description", "provider", "external_id"),
    ),
    ("modelversion", "modelversion_search_trgm", ("version", "artifact_uri", "digest")),
    ("system", "system_search_trgm", ("name", "description", "business_purpose")),
    (
        "deployment",
        "deployment_search_trgm",
        ("name", "endpoint", "platform_locator", "business_purpose"),
    ),
    (
        "nonhumanidentity",
        "nhi_search_trgm",
        ("name", "external_id", "vendor", "provider"),
    ),
)
# upper() evaluated by PL/pgSQL keeps the caller's collation, so it folds as UPPER(column).
CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FOLD}(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED COST 100
AS $$ BEGIN RETURN upper(value); END $$
"""


def rebuild(apps, schema_editor, fold):
    quote = schema_editor.quote_name
    for model_name, name, columns in SEARCH_INDEXES:
        table = apps.get_model(APP, model_name)._meta.db_table
        expressions = ", ".join(f"{fold}({quote(c)}) gin_trgm_ops" for c in columns)
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
        schema_editor.execute(
            f"CREATE INDEX {quote(name)} ON {quote(table)} USING gin ({expressions})"
        )
        # Statistics on the new expressions, so the planner knows how many rows a term
        # matches from the start.
        schema_editor.execute(f"ANALYZE {quote(table)}")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION)
    rebuild(apps, schema_editor, FOLD)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    rebuild(apps, schema_editor, "UPPER")
    # After sources 0004 and audit 0004 have been reversed (they depend on this one).
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FOLD}(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0020_tiers_index"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
