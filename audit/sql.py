"""Set-based INSERTs for append-only rows written a batch at a time (audit events, history
rows, change notices): one `INSERT … SELECT … FROM unnest(…)` on PostgreSQL, whatever the
number of rows, and `bulk_create` elsewhere.

`bulk_create` builds one placeholder and one adapted parameter per cell: for a sync's batch
of a thousand events of fifteen columns that is 15,000 parameters compiled in Python and a
statement of that size parsed by the server. Here each column is one array parameter, and
nothing is read back unless the caller asks for the ids (`key`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection, models


def insert_rows(
    model: type[models.Model],
    objs: Sequence[models.Model],
    fields: Sequence[str],
    *,
    batch_size: int = 5000,
    key: str | None = None,
) -> int:
    """Insert unsaved `objs` of `model`, writing only `fields` (the rest take their
    database defaults on PostgreSQL, their model defaults elsewhere). Returns the count.

    With `key` (a unique field among `fields`), the new rows' ids are read back and set on
    `objs`, matched on that field (the order of rows an INSERT … SELECT returns is not
    promised)."""
    if not objs:
        return 0
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=min(batch_size, 1000))
        return len(objs)
    opts = model._meta
    qn = connection.ops.quote_name
    columns, selects, casts, getters = [], [], [], []
    for n, name in enumerate(fields):
        f = opts.get_field(name)
        columns.append(qn(f.column))
        if isinstance(f, models.JSONField):
            # Sent as text and cast, exactly as Django's JSONField dumps it (json.dumps with
            # the field's encoder), so what is read back is what was hashed.
            casts.append("%s::text[]")
            selects.append(f"c{n}::jsonb")
            getters.append(_json_getter(f))
        else:
            casts.append(f"%s::{f.db_type(connection)}[]")
            selects.append(f"c{n}")
            getters.append(_plain_getter(f))
    aliases = ", ".join(f"c{n}" for n in range(len(fields)))
    # Only quoted names and types from the model's meta are formatted in; values are
    # parameters.
    sql = (
        f"INSERT INTO {qn(opts.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(casts)}) AS u({aliases})"
    )
    if key is not None:
        key_field = opts.get_field(key)
        sql += f" RETURNING {qn(opts.pk.column)}, {qn(key_field.column)}"
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            part = objs[start : start + batch_size]
            cursor.execute(sql, [[get(o) for o in part] for get in getters])
            if key is not None:
                ids = {k: pk for pk, k in cursor.fetchall()}
                for obj in part:
                    obj.pk = ids.get(getattr(obj, key_field.attname))
                    obj._state.adding, obj._state.db = False, connection.alias
    return len(objs)


def _json_getter(f: models.JSONField):
    attname, encoder = f.attname, f.encoder

    def get(obj: models.Model) -> str | None:
        value = getattr(obj, attname)
        # Python None is SQL NULL, as Django stores it.
        return None if value is None else json.dumps(value, cls=encoder)

    return get


def _plain_getter(f: models.Field):
    attname = f.attname

    def get(obj: models.Model):
        return f.get_db_prep_save(getattr(obj, attname), connection)

    return get
