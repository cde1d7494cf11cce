"""A digit run split at spaces stays an identifier candidate beside a date (review finding 2).

The PHI text detector joined "7 7649 635 2024-03-01" into one spaced run
("7 7649 635 2024") that overlapped the date, and dropped it whole: the
record number was lost because a date stood next to it. The verifier's
identifier parts split on spaces, so "S 12 345 2024-03-01" gave no part at
all. Both now leave the date's groups out and judge the groups beside it.
"""

from __future__ import annotations

import pytest

from wsideid.detect.phi_text import classify_text
from wsideid.model import REMOVE, Decision, Field, Inventory, Plan, ValueKind
from wsideid.needles import id_parts, needles_for_plan, scan_bytes


def _flagged(text: str, category: str) -> list[str]:
    return [text[a:b] for f in classify_text(text) if f.category == category for a, b in [f.span]]


@pytest.mark.parametrize("text,run", [
    ("7 7649 635 2024-03-01", "7 7649 635"),
    ("2024-03-01 7 7649 635", "7 7649 635"),
    ("MRN 123 456 2024-03-01", "123 456"),
    ("12 345 678 03/01/2024", "12 345 678"),
    ("scanned 1 March 2024 55 123 4", "55 123 4"),
])
def test_spaced_run_beside_a_date_is_flagged(text, run):
    assert run in _flagged(text, "mrn")
    assert _flagged(text, "date")  # the date is still a date


@pytest.mark.parametrize("text", ["1 of 2", "2024-03-01", "page 3 of 12 2024-03-01"])
def test_no_run_invented(text):
    assert _flagged(text, "mrn") == []


@pytest.mark.parametrize("value,part", [
    ("S 12 345 2024-03-01", "12 345"),
    ("7 7649 635 2024-03-01", "7 7649 635"),
    ("MRN 123 4567", "123 4567"),
])
def test_identifier_part_is_the_spaced_run(value, part):
    assert part in id_parts(value)


def test_verifier_finds_the_run_of_a_removed_identifier():
    f = Field("ifd[0]/Barcode", "tags:Barcode", "S 12 345 2024-03-01", kind=ValueKind.IDENTIFIER)
    plan = Plan(Inventory("generic-tiff", "x", [], [f]), [Decision(f, REMOVE, None, "tags.Barcode")], [], "p", "0", {})
    needles = needles_for_plan(plan).needles
    assert "12 345" in {n.text for n in needles}
    hits = scan_bytes(b"kept note: slide 12 345 of the lab", needles)
    assert [h.needle.text for h in hits] == ["12 345"]
