"""Where the scanned bytes are cut (a window's end, a large gap handed over in pieces), the
scanner finds exactly what one scan of the whole bytes finds: no more ("2019-12-3|1" is not
3 December, "1234|5" is not the number 1234, "20191231|2019" is not a DICOM DT) and no less.

Random texts dense with dates, numbers and names that nearly match are cut at random places and
scanned with windows far smaller than the real ``CHUNK``, so that every kind of cut occurs."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from wsideid import needles as nd
from wsideid.needles import Needle, NeedleKind, Scanner

DAYS = [dt.date(2019, 12, 3), dt.date(2019, 12, 31), dt.date(2001, 1, 1), dt.date(2001, 1, 12)]
BITS = ["2019-12-31", "20191231", "31.12.2019", "2001-01-12", "12345", "1234", "x", " ", "-", "9", "0",
        "20011", "Dec 31, 2019", "2019-12-3", "abc", "2001-1-1", "Kowalski", "Kowalskin", "1.", "."]


def _needles() -> list[Needle]:
    out = [Needle(d.isoformat(), NeedleKind.DATE, "date", day=d) for d in DAYS]
    return out + [Needle("1234", NeedleKind.ID_PART, "id"), Needle("12345", NeedleKind.ID_PART, "id"),
                  Needle("Kowalski", NeedleKind.NAME_PART, "name")]


def _found(hits) -> set[tuple[str, int]]:
    return {(h.needle.text, h.offset) for h in hits}


@pytest.mark.parametrize("seed", range(1500))
def test_pieces_and_windows_find_what_one_scan_finds(seed, monkeypatch):
    rng = random.Random(seed)
    enc = rng.choice(["utf-8", "utf-16-le", "utf-16-be"])
    # noise at both ends: a match at the very start or end of the bytes has no context to judge
    data = ("##" + "".join(rng.choice(BITS) for _ in range(rng.randrange(20, 80))) + "##").encode(enc)
    whole = _found(Scanner(_needles()).scan([(0, data)]))
    monkeypatch.setattr(nd, "CHUNK", rng.choice([200, 300, 1 << 20]))
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 6))))
    pieces = [(a, data[a:b]) for a, b in zip([0] + cuts, cuts + [len(data)])]
    assert _found(Scanner(_needles()).scan(pieces)) == whole, (enc, cuts, data)


def test_a_cut_date_is_not_another_date():
    """The case that was seen: "2019-12-31" cut after "3" read as 3 December."""
    data = b"on 2019-12-31 at"
    pieces = [(0, data[:12]), (12, data[12:])]
    assert _found(Scanner(_needles()).scan(pieces)) == {("2019-12-31", 3)}
