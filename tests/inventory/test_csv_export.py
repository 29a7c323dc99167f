"""Property tests for the CSV writer auditors' spreadsheets read (OWASP ASVS 5.0 1.2.10)."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.csv_export import FORMULA_TRIGGERS, cell, csv_stream

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=1000)
@given(TEXT)
def test_no_cell_starts_like_a_formula(text):
    assert not cell(text).startswith(FORMULA_TRIGGERS)


@settings(max_examples=1000)
@given(TEXT)
def test_text_survives_the_round_trip_apart_from_the_defusing_quote(text):
    written = cell(text)
    assert written == text or (
        written == "'" + text and text.startswith(FORMULA_TRIGGERS)
    )


@settings(max_examples=300)
@given(st.lists(st.lists(TEXT, min_size=3, max_size=3), max_size=20))
def test_rows_parse_back_as_written(rows):
    """Commas, quotes and line breaks inside values never shift columns."""
    text = "".join(csv_stream(["a", "b", "c"], rows)).lstrip("\ufeff")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == ["a", "b", "c"]
    assert parsed[1:] == [[cell(v) for v in row] for row in rows]
