from __future__ import annotations

from collections.abc import Iterator

import pytest

from inventory import models as m
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    Record,
    SourceUnavailable,
)


class ListConnector(Connector):
    """A connector whose source is a list in its own settings: the engine's test double.

    `records`: [{"id": ..., "name": ..., "lifecycle": ...}] or {"malformed": reason};
    `generate`: N more records made on the fly (a large source that never sits in memory);
    `down`: true makes the source unavailable.
    """

    kind = "test_list"
    label = "Test list"
    owns = (m.AIModel,)

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        if ctx.settings.get("down"):
            raise SourceUnavailable("Connection refused by test source.")
        for i in range(ctx.settings.get("generate", 0)):
            yield Record(f"g{i}", {"id": f"g{i}", "name": f"generated-model-{i}"})
        for item in ctx.settings.get("records", []):
            if "malformed" in item:
                yield Malformed(item.get("id", ""), item["malformed"], repr(item))
            else:
                yield Record(item["id"], item)

    def apply(self, batch, ctx) -> None:
        ctx.upsert(
            m.AIModel,
            [
                (
                    r.external_id,
                    {
                        "name": r.payload["name"],
                        "lifecycle": r.payload.get("lifecycle", "active"),
                    },
                )
                for r in batch
            ],
        )


@pytest.fixture
def list_connector(monkeypatch):
    monkeypatch.setitem(CONNECTORS, "test_list", f"{__name__}.ListConnector")
    return ListConnector


@pytest.fixture
def list_source(db, list_connector):
    def make(records, **config):
        return sm.DataSource.objects.create(
            name="List", kind="test_list", config={"records": records, **config}
        )

    return make
