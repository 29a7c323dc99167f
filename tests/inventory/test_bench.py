from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from devtools import demo


@pytest.mark.django_db
def test_quick_bench_prints_a_table_with_the_floor():
    out = StringIO()
    call_command("bench", "--quick", "--requests", "2", stdout=out)
    text = out.getvalue()
    assert "page" in text and "p95 ms" in text
    floor = next(line for line in text.splitlines() if line.startswith("floor"))
    cells = [c.strip() for c in floor.split("|")]
    assert cells[2] == "200"
    assert int(cells[3]) >= 1, "query capture must see the session and user queries"
    assert "deployment list, after row" in text
    assert "error:" not in text


@pytest.mark.django_db
def test_bench_refuses_to_mix_with_smaller_existing_data():
    demo.seed_demo(models=5, deployments=10, identities=10)
    with pytest.raises(CommandError, match="short of the target"):
        call_command("bench", "--quick", "--requests", "1", stdout=StringIO())


@pytest.mark.django_db
def test_sources_bench_prints_receiver_and_kubernetes_figures():
    """The MLflow part is left out here: it starts a server of its own (8 s)."""
    out = StringIO()
    call_command(
        "bench",
        "--sources",
        "--only",
        "otlp",
        "--only",
        "kubernetes",
        "--spans",
        "600",
        "--k8s-objects",
        "60",
        stdout=out,
    )
    text = out.getvalue()
    assert "spans/s" in text
    assert "api_first: " in text and "errors 0" in text
