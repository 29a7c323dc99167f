"""The OTLP bench runs end to end at a small size and checks its own count."""

from __future__ import annotations

import pytest
from django.db import connection

from devtools.bench_otlp import bench_otlp
from inventory import models as m

pytestmark = pytest.mark.django_db


def test_bench_otlp_small():
    lines: list[str] = []
    result = bench_otlp(spans=1100, batch=512, out=lines.append)
    assert result["requests"] == 3 and result["receiver_spans_per_s"] > 0
    calls = sum(m.UsageHour.objects.values_list("calls", flat=True))
    assert calls == 1100 + 512  # the measured spans and the warm-up request
    assert not m.APIToken.objects.filter(revoked_at__isnull=True).exists()
    text = "\n".join(lines)
    assert "spans/s" in text
    if connection.vendor == "postgresql":
        assert result["copy_rows_per_s"] > 0 and "Ratio receiver" in text
    else:
        assert "PostgreSQL only" in text
