"""Issue 9 item 11: after a large sync, when autovacuum is off, the touched tables are
vacuumed (PostgreSQL only; `services` tests run there)."""

from __future__ import annotations

import pytest
from django.db import connection

from inventory import models as m
from sources import models as sm
from sources.sync import maintenance, runner

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

TABLE = m.AIModel._meta.db_table


def _last_vacuum():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = %s",
            [TABLE],
        )
        return cursor.fetchone()


def _set_autovacuum(enabled: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {connection.ops.quote_name(TABLE)} "
            f"SET (autovacuum_enabled = {'true' if enabled else 'false'})"
        )


def _sync(source):
    run, created = runner.request_sync(source=source, trigger="command")
    assert created
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def list_source(transactional_db, list_connector):
    def make(records):
        return sm.DataSource.objects.create(
            name=f"List {len(records)}", kind="test_list", config={"records": records}
        )

    yield make
    # The eager task closed the connection that asked for audit maintenance; the flush
    # that ends a transactional test needs it again (tests/conftest.py).
    with connection.cursor() as cursor:
        cursor.execute("SET runproof.audit_maintenance = 'on'")


def _server_autovacuum() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


def _records(n):
    return [{"id": f"v{i}", "name": f"vacuum-model-{i}"} for i in range(n)]


@pytest.fixture
def autovacuum_off_on_table(transactional_db):
    _set_autovacuum(False)
    yield
    _set_autovacuum(True)


def test_large_sync_vacuums_a_table_whose_autovacuum_is_off(
    list_source, settings, autovacuum_off_on_table
):
    assert connection.vendor == "postgresql"
    settings.SYNC_VACUUM_AFTER_ROWS = 20
    where = "for this table" if _server_autovacuum() else "on the server"
    assert maintenance.autovacuum_off_tables([TABLE]) == {TABLE: where}
    before = _last_vacuum()
    source = list_source(_records(25))
    run = _sync(source)
    after = _last_vacuum()
    assert after[0] is not None and (before[0] is None or after[0] > before[0])
    assert after[1] is not None
    vacuumed = [c for c in run.changes if c["action"] == "vacuumed"]
    assert [c["external_id"] for c in vacuumed] == [TABLE]
    assert f"autovacuum is off {where}" in vacuumed[0]["note"]
    # An unchanged re-sync writes nothing, so there is nothing to vacuum.
    again = _sync(source)
    assert again.unchanged == 25
    assert not [c for c in again.changes if c["action"] == "vacuumed"]
    assert _last_vacuum()[0] == after[0]


def test_small_sync_or_autovacuum_on_does_not_vacuum(list_source, settings):
    settings.SYNC_VACUUM_AFTER_ROWS = 20
    before = _last_vacuum()
    if _server_autovacuum():
        # Autovacuum on (the server's, and the table's reloptions untouched): nothing.
        assert maintenance.autovacuum_off_tables([TABLE]) == {}
        run = _sync(list_source(_records(25)))
        assert not [c for c in run.changes if c["action"] == "vacuumed"]
        assert _last_vacuum()[0] == before[0]
    _set_autovacuum(False)
    try:
        # Below the threshold: nothing either.
        small = _sync(list_source([{"id": "s1", "name": "small-model"}]))
        assert small.created == 1
        assert not [c for c in small.changes if c["action"] == "vacuumed"]
        assert _last_vacuum()[0] == before[0]
    finally:
        _set_autovacuum(True)


def test_no_vacuum_in_a_dry_run_or_with_the_setting_off(transactional_db, settings):
    settings.SYNC_VACUUM_AFTER_ROWS = 1
    assert maintenance.vacuum_after_sync({TABLE: 100}, dry_run=True) == []
    settings.SYNC_VACUUM_AFTER_ROWS = 0
    assert maintenance.vacuum_after_sync({TABLE: 100}, dry_run=False) == []
