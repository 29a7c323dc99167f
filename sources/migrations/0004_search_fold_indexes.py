"""The sources lists' trigram indexes rebuilt on `runproof_fold` (inventory 0021, which
creates it; see there for why), PostgreSQL only. The events' model name keeps UPPER(): the
"Model name contains" filter is a plain icontains, not the list's search."""

from django.db import migrations

APP = "sources"
# (model, index name, columns the search folds, columns kept on UPPER): 0002's columns.
SEARCH_INDEXES = (
    ("syncrun", "syncrun_search_trgm", ("error",), ()),
    (
        "deploymentevent",
        "deploymentevent_search_trgm",
        ("endpoint", "commit", "pipeline"),
        ("model_name",),
    ),
)


def rebuild(apps, schema_editor, fold):
    quote = schema_editor.quote_name
    for model_name, name, folded, upper in SEARCH_INDEXES:
        table = apps.get_model(APP, model_name)._meta.db_table
        expressions = ", ".join(
            [f"{fold}({quote(c)}) gin_trgm_ops" for c in folded]
            + [f"UPPER({quote(c)}) gin_trgm_ops" for c in upper]
        )
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
        ("sources", "0003_merge_search_indexes_and_upload_hash"),
        ("inventory", "0021_search_fold_function"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
