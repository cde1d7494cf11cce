"""The date scan (``date_scan``): a removed date is found by its shape, in exactly the spellings
``dates.spellings`` lists, as the spelled-out needles found it.

The contract: every string of ``spellings(day)``, in every encoding, upper or lower case, NFC or
NFD, embedded in noise, is found; a date inside a longer run of digits or beside a dotted number,
another date, and a date the policy wrote are not; and on random date-dense texts and random
bytes the scan finds the same days at the same offsets as the spelled-out needles did."""

from __future__ import annotations

import datetime as dt
import random
import unicodedata

import numpy as np
import pytest

from wsideid import needles as nd
from wsideid.date_scan import FORMS, DateFinder, _alphabet, _unlowered, longest_spelling
from wsideid.dates import month_names, spellings
from wsideid.model import DATE, Decision, Field, Inventory, Plan
from wsideid.needles import Needle, NeedleKind, Scanner, needles_for_plan
from wsideid.textbytes import ENCODINGS, encodable

DAYS = [dt.date(2019, 12, 31), dt.date(2001, 1, 1), dt.date(1999, 3, 5), dt.date(2024, 2, 29),
        dt.date(2012, 11, 12), dt.date(2020, 8, 13), dt.date(1987, 10, 5), dt.date(2003, 9, 30)]


def _day_needle(day: dt.date, src: str = "inst[0]/StudyDate") -> Needle:
    return Needle(day.isoformat(), NeedleKind.DATE, src, day=day)


def _spelled(days) -> Scanner:
    """The scan as it was: every spelling a literal needle (its source names its day)."""
    return Scanner([Needle(s, NeedleKind.DATE, d.isoformat()) for d in days for s in spellings(d)])


def _variants(s: str) -> list[str]:
    return list(dict.fromkeys([s, s.upper(), s.title(), unicodedata.normalize("NFD", s)]))


def _encoded(s: str):
    for enc in ENCODINGS:
        try:
            yield enc, s.encode(enc)
        except UnicodeEncodeError:
            continue


def _laid_out(texts: list[str], enc: str, rng: random.Random) -> tuple[bytes, list[int]]:
    """The texts in one buffer, each between a little noise (no digits, no dots), and where each starts."""
    noise, out, at = b"abcxyzQ \x01\x7f\xff<>=;\n#", [], []
    size = 0
    for t in texts:
        gap = bytes(rng.choice(noise) for _ in range(rng.randrange(1, 9))) + "#".encode(enc)
        data = t.encode(enc)
        out += [gap, data]
        at.append(size + len(gap))
        size += len(gap) + len(data)
    return b"".join(out) + b"#", at


def _starts(finder: DateFinder, data: bytes, day: dt.date) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for h in finder.occurrences(data.lower()):
        if h.day == day:
            out.setdefault(h.start, set()).add(h.encoding)
    return out


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_spelling_is_found_in_every_encoding_and_case(day):
    finder = DateFinder([day])
    rng = random.Random(day.toordinal())
    texts = [v for s in spellings(day) for v in _variants(s)]
    for enc in ENCODINGS:
        shown = [t for t in texts if encodable(t, enc)]
        assert len(shown) > (300 if enc == "latin-1" else 1000)
        data, at = _laid_out(shown, enc, rng)
        found = _starts(finder, data, day)
        missed = [(t, enc) for t, a in zip(shown, at) if a not in found]
        assert not missed, missed[:10]
        # where it was written (a UTF-16 text is also read one byte off; those starts are not these)
        if enc in ("utf-16-le", "utf-16-be"):
            assert all(enc in found[a] for a in at)
    # and through the scanner, with the hit naming the date's needle, in a file's offsets
    hits = Scanner([_day_needle(day)]).scan([(100, b"x\x00" + spellings(day)[-1].upper().encode("utf-16-be"))])
    assert [(h.needle.day, h.offset, h.encoding) for h in hits] == [(day, 102, "utf-16-be")]


@pytest.mark.parametrize("day", DAYS[:4], ids=str)
def test_not_inside_digits_dotted_numbers_or_other_dates(day):
    finder = DateFinder([day])
    rng = random.Random(day.toordinal())
    spelled = spellings(day)
    for enc in ENCODINGS:
        shown = [s for s in spelled if encodable(s, enc)]
        # text around it, so that a UTF-16 text read one byte off sees the same neighbours
        inside = [f"x1{s}" for s in shown if s[0].isascii() and s[0].isdigit()] + \
                 [f"x1.{s}" for s in shown if s[0].isascii() and s[0].isdigit()] + \
                 [f"{s}1x" for s in shown if s[-1].isascii() and s[-1].isdigit()] + \
                 [f"{s}.1x" for s in shown if s[-1].isascii() and s[-1].isdigit()]
        assert len(inside) > 1000
        data, _ = _laid_out(inside, enc, rng)
        assert _starts(finder, data, day) == {}, enc
        apart = [f"x.{s}. x" for s in shown]  # a full stop is no number
        data, at = _laid_out(apart, enc, rng)
        assert set(_starts(finder, data, day)) >= {a + len("x.".encode(enc)) for a in at}, enc
    spelled_set = set(spelled)
    for other in (day + dt.timedelta(days=1), day - dt.timedelta(days=366), day + dt.timedelta(days=31)):
        texts = [s for s in spellings(other) if s not in spelled_set]
        for enc in ("utf-8", "utf-16-le"):
            data, _ = _laid_out([t for t in texts if encodable(t, enc)], enc, rng)
            assert _starts(finder, data, day) == {}, (other, enc)


def test_a_date_the_policy_wrote_is_not_searched_and_dates_are_one_needle_each():
    plan = Plan(Inventory("dicom", "x", [], []), [
        Decision(Field("inst[0]/StudyDate", "dicom:StudyDate", "20191231", ifd=0, tag=0x00080020), DATE, "20191224"),
        Decision(Field("inst[0]/ContentDate", "dicom:ContentDate", "20191224", ifd=0, tag=0x00080023), DATE,
                 "20191217")], [], "test", "0" * 64, {})
    ns = needles_for_plan(plan)
    assert [(n.day, n.kind) for n in ns.searched] == [(dt.date(2019, 12, 31), NeedleKind.DATE)]
    scanner = Scanner(ns.searched)
    assert scanner.scan([(0, b"StudyDate 20191224 and 24.12.2019, 2019-12-17")]) == []
    hits = scanner.scan([(0, "a copy: 31 DÉCEMBRE 2019".encode("utf-16-be"))])
    assert len(hits) == 1 and hits[0].needle.kind == NeedleKind.DATE
    text = hits[0].describe()
    assert text.startswith(f"removed date from {ns.searched[0].source}, found in the output at byte 16")
    assert "2019" not in text and "31" not in text.split("byte")[0]


def test_dates_alone_build_no_spelled_out_needles():
    """2,000 removed dates (a hostile file's worth) cost one set of days, not 2.5 million strings."""
    days = [dt.date(1950, 1, 1) + dt.timedelta(days=9 * k) for k in range(2000)]
    scanner = Scanner([_day_needle(d) for d in days])
    assert not scanner._by_prefix and len(scanner._days) == 2000
    day = days[1225]
    data = b"\x00" * 5000 + f"am {day.day}. März {day.year} gescannt".encode("utf-16-le") + b"\x00" * 5000
    hits = scanner.scan([(0, data)])
    # 5005: the text read one byte off as UTF-16 BE starts there, as the spelled-out scan found too
    assert [(h.needle.day, h.offset) for h in hits] == [(day, 5005)] and day.month == 3


def test_a_date_across_a_window_or_two_touching_segments_is_found():
    day = dt.date(2019, 12, 31)
    scanner = Scanner([_day_needle(day)])
    date = "31. Dezember 2019".encode("utf-16-le")
    big = b"x" * (nd.CHUNK - 10) + date + b"y" * 100
    assert [h.offset for h in scanner.scan([(0, big)])] == [nd.CHUNK - 10]
    cut = nd.CHUNK - 3
    assert [h.offset for h in scanner.scan([(0, big[:cut]), (cut, big[cut:])])] == [nd.CHUNK - 10]
    assert scanner.scan([(0, big[:cut]), (cut + 1, big[cut:])]) == []  # not adjacent: no date across them
    small = b"on 2019-1", b"2-31 by"
    assert [h.offset for h in scanner.scan([(0, small[0]), (9, small[1])])] == [3]
    assert longest_spelling() >= max(len(s.encode("utf-16-le")) for s in spellings(day))


def test_lower_casing_the_bytes_is_undone_without_ambiguity():
    """In UTF-16, lower-casing the haystack's bytes turns "号" (U+53F7, a byte of "S") into
    another character; reading a candidate back maps it home, and no mapped character is
    itself one the date scan knows."""
    alphabet = set(_alphabet())
    for encs in FORMS:
        for enc in encs:
            back = _unlowered(enc)
            assert not {chr(k) for k in back} & alphabet
    assert "号" in _unlowered("utf-16-le").values()


def _random_text(rng: random.Random, days: list[dt.date]) -> str:
    """Date-dense text: spellings of wanted and other days, pieces of them, month names,
    digits, separators and dots, side by side in random case."""
    pieces = []
    for _ in range(rng.randrange(4, 30)):
        k = rng.random()
        if k < 0.25:
            d = rng.choice(days) if rng.random() < 0.5 else dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(400))
            s = rng.choice(spellings(d))
            pieces.append(s if rng.random() < 0.7 else s[:rng.randrange(1, len(s))] + s[rng.randrange(len(s)):])
        elif k < 0.45:
            pieces.append(rng.choice(month_names(rng.randrange(1, 13))))
        elif k < 0.75:
            pieces.append(str(rng.choice([1, 5, 10, 12, 13, 19, 20, 29, 30, 31, 99, 2019, 2020, 1999, 19991231])))
        else:
            pieces.append(rng.choice([" ", "-", "/", ".", ", ", "..", "_", ":", "st", "de ", "1.", "x", "年", "月",
                                      "日", "０", "１９", "a", "ou"]))
    text = "".join(p if rng.random() < 0.5 else " " + p for p in pieces)
    return text.upper() if rng.random() < 0.3 else text


def _found(hits) -> set[tuple[dt.date, int]]:
    return {(h.needle.day or dt.date.fromisoformat(h.needle.source), h.offset) for h in hits}


def _first_per_day(hits) -> set[tuple[dt.date, int]]:
    first: dict[dt.date, int] = {}
    for day, off in _found(hits):
        first[day] = min(off, first.get(day, off))
    return set(first.items())


def test_the_same_days_at_the_same_offsets_as_the_spelled_out_needles():
    rng = random.Random(7)
    days = [dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(400)) for _ in range(6)]
    days += [dt.date(2019, 10, 5), dt.date(2019, 5, 3), dt.date(2019, 3, 5)]  # "août 5" holds "out 5"; D/M
    old, new = _spelled(days), Scanner([_day_needle(d) for d in days])
    found = 0
    for trial in range(120):
        text = _random_text(rng, days)
        for enc, data in _encoded(text):
            want = _first_per_day(old.scan([(0, data)]))
            assert _first_per_day(new.scan([(0, data)])) == want, (text, enc)
            found += len(want)
    assert found > 100  # the texts do hold dates
    noise = np.random.default_rng(3).integers(0, 256, 1 << 20, dtype=np.uint8)
    noise[noise % 7 == 0] = ord("1")  # digit-dense
    noise[noise % 11 == 0] = ord("/")
    data = noise.tobytes()
    assert _first_per_day(new.scan([(0, data)])) == _first_per_day(old.scan([(0, data)]))
    # sparse random bytes with date-dense texts planted here and there (the scan reads only
    # around pairs of digits: what stands beside them must still be seen)
    sparse = bytearray(np.random.default_rng(4).integers(0, 256, 2 << 20, dtype=np.uint8).tobytes())
    for _ in range(150):
        enc, planted = rng.choice(list(_encoded(_random_text(rng, days))))
        at = rng.randrange(len(sparse) - len(planted))
        sparse[at:at + len(planted)] = planted
    want = _first_per_day(old.scan([(0, bytes(sparse))]))
    assert len(want) >= 5 and _first_per_day(new.scan([(0, bytes(sparse))])) == want


def test_a_compact_date_is_found_in_a_dicom_datetime():
    """A removed date in a DICOM DT value (20191231120000.000000+0100) kept elsewhere: the
    time of day after it does not make it another number; other digits after it still do."""
    day = dt.date(2019, 12, 31)
    finder = DateFinder([day])
    found = ["20191231120000", "20191231120000.123456", "2019123112", "201912311200", "20191231235960+0100",
             "31122019093000"]
    apart = ["201912311", "2019123112000", "20191231246000", "20191231126000", "20191231120099",
             "20191231120000123", "201912311200001", "20191231120000.1234567"]
    for enc in ENCODINGS:
        for text in found:
            data = f"x {text} y".encode(enc).lower()
            assert [h.day for h in finder.find(data)] == [day], (text, enc)
        for text in apart:
            assert finder.find(f"x {text} y".encode(enc).lower()) == [], (text, enc)
