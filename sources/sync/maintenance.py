"""After a large sync, on a PostgreSQL server whose autovacuum is off: `VACUUM (ANALYZE)`.

Autovacuum is off on some servers (or on a table, `autovacuum_enabled = false`). There, a
sync that updates 50,000 rows leaves the table bloated with their dead versions (the
deployment table's heap grew from 4,258 to 11,046 pages after one benchmark) and the
planner's statistics stale. Syncs no longer rewrite unchanged rows, which removes most of
that; what a large run did write is vacuumed here, once the run is finished, outside any
transaction (VACUUM cannot run inside one). With autovacuum on this does nothing: the
server's own daemon does it better. SQLite needs none of it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

VACUUMED = (
    "VACUUM (ANALYZE) {table} after this run wrote {rows:,} of its rows "
    "({seconds:.2f} s): autovacuum is off {where}."
)
_OFF = {"off", "false", "no", "0", "f", "n"}


def autovacuum_off_tables(tables: list[str]) -> dict[str, str]:
    """{table: where autovacuum is off ("on the server" / "for this table")} of `tables`."""
    if connection.vendor != "postgresql" or not tables:
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        server_off = str(cursor.fetchone()[0]).lower() in _OFF
        cursor.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c "
            "WHERE c.relname = ANY(%s) AND c.relkind = 'r' "
            "AND pg_table_is_visible(c.oid)",
            [tables],
        )
        options = dict(cursor.fetchall())
    off: dict[str, str] = {}
    for table in tables:
        if table not in options:
            continue
        if server_off:
            off[table] = "on the server"
            continue
        for option in options[table] or []:
            key, _, value = option.partition("=")
            if key == "autovacuum_enabled" and value.lower() in _OFF:
                off[table] = "for this table"
    return off


def vacuum_after_sync(
    written: dict[str, int], *, dry_run: bool
) -> list[dict[str, Any]]:
    """Vacuum the tables a finished run wrote to, if it wrote at least
    SYNC_VACUUM_AFTER_ROWS rows and autovacuum is off for them. Returns a note per table
    vacuumed, for the run's record (each is logged too)."""
    threshold = settings.SYNC_VACUUM_AFTER_ROWS
    total = sum(written.values())
    if (
        dry_run
        or threshold <= 0
        or total < threshold
        or connection.vendor != "postgresql"
    ):
        return []
    if connection.in_atomic_block:
        log.warning("not vacuuming after a sync inside a transaction")
        return []
    tables = sorted(t for t, n in written.items() if n > 0)
    notes = []
    qn = connection.ops.quote_name
    for table, where in sorted(autovacuum_off_tables(tables).items()):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {qn(table)}")
        note = VACUUMED.format(
            table=table,
            rows=written[table],
            seconds=time.perf_counter() - started,
            where=where,
        )
        log.info(note)
        notes.append(
            {"action": "vacuumed", "kind": "table", "external_id": table, "note": note}
        )
    return notes
