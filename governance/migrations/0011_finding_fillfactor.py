"""Leave half of each page of governance_finding free (PostgreSQL), so a run moving an
unchanged finding's last seen time rewrites the row in its own page without touching
any of the table's indexes (a heap-only tuple update).

At full scale a nightly run moves the last seen time of some 364,000 findings. With full
pages, each of those updates wrote a new entry in every one of the table's 17 indexes:
3,715 of 728,699 updates were heap-only, and the run took 47.7 s. `last_seen_at` is in no
index, so with room in the page they all can be
(https://www.postgresql.org/docs/15/storage-hot.html). A run updates every row of a page
in one transaction, before any old version can be pruned, so the page must hold a second
copy of each of its rows: with a fifth free, 99,282 of 364,240 were heap-only; with half
free, all of them, and the same run took 28 to 33 s. The table's heap is twice the size
(about 520 MB at 364,000 findings); its indexes, 280 MB there, do not grow.

New pages keep the room at once; rows already written get it as their pages are next
rewritten, or at once with `VACUUM FULL governance_finding` in a maintenance window.
"""
from __future__ import annotations

from django.db import migrations

FILLFACTOR = 50


def _table(apps, schema_editor) -> str:
    table = apps.get_model("governance", "Finding")._meta.db_table
    return schema_editor.quote_name(table)


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = _table(apps, schema_editor)
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = _table(apps, schema_editor)
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("governance", "0010_merge_copied_keys_scope_indexes")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
