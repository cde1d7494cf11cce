"""Removed dates found in bytes by their shape: every spelling ``dates.spellings`` knows, for
any number of dates, at a cost that does not grow with them.

Why not spell each date out as needles: ``spellings`` gives about 1,250 strings a date, in
three byte forms each, and building the needle table cost about 3 s per 100 dates (a DICOM
run with 120 removed dates spent 67 of its 74 s there; a hostile file with thousands of dates
would have taken minutes). Instead, a few byte regexes per encoding find every substring shaped
like one of those spellings (digits with separators, ISO and DICOM DA, compact forms, month
names and abbreviations in the languages ``dates`` knows, day-first and month-first, CJK and
full-width forms); each candidate is read back as text, parsed (``dates.parse_any``, which reads
every spelling back to its date) and counts only when it is exactly one of ``spellings(day)``
for a removed day. So what is found is what the spelled-out needles found, no more and no less
(tests/test_date_scan.py checks every spelling of sample days in every encoding, and compares
with the spelled-out scan on random data).

The same rules as for the other needles: case folded; UTF-8, Latin-1, UTF-16 LE and BE, with
every case variant and NFC/NFD form of a character (``textbytes``); a date stands apart from
other digits (not inside a longer run of digits, not beside a dotted number: "131.12.2019" and
"1.31.12.2019" are not 31.12.2019), except that a compact date may go on as a time of day, as in
a DICOM DT ("20191231120000.000000" holds 2019-12-31).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .dates import month_names, parse_any, spellings
from .textbytes import char_alts, encodable, forms

# The byte forms scanned: UTF-8 and Latin-1 in one pass (they agree on ASCII, and a candidate is
# read back in both), UTF-16 LE and BE in one pass each.
FORMS: tuple[tuple[str, ...], ...] = (("utf-8", "latin-1"), ("utf-16-le",), ("utf-16-be",))
_FULLWIDTH = "０１２３４５６７８９"
_CJK = ("年년", "月월", "日号일")  # after the year, the month, the day
_SEPARATORS = " ./,-"  # between a month name and its numbers
_NUMERIC_SEPARATORS = "-/:._ "  # between numbers (the same one twice)


@dataclass(frozen=True)
class DateHit:
    start: int
    end: int
    encoding: str
    day: dt.date


class DateFinder:
    """Finds the given days in lower-cased byte buffers (see the module docstring)."""

    def __init__(self, days: Iterable[dt.date]):
        self.days = frozenset(days)
        # (year, day of month) as written, for a quick look before a candidate is parsed
        self._pairs = {(y, d) for day in self.days for y in (str(day.year), f"{day.year % 100:02d}")
                       for d in (str(day.day), f"{day.day:02d}")}
        self._seen: dict[tuple[bytes, tuple[str, ...]], tuple[str, list[dt.date]] | None] = {}
        for encs in FORMS if self.days else ():
            _regexes(encs)  # compiled once per process, here rather than in the first scan

    @property
    def overlap(self) -> int:
        """The longest spelling of any date in bytes: how far scan windows must overlap."""
        return longest_spelling()

    def find(self, hay: bytes, skip: frozenset[dt.date] | set[dt.date] = frozenset()) -> list[DateHit]:
        """The first occurrence of each day in ``hay`` (lower-cased as ``bytes.lower`` does),
        days in ``skip`` left out."""
        first: dict[dt.date, DateHit] = {}
        if self.days <= skip:  # none left to find
            return []
        for hit in self.occurrences(hay):
            if hit.day not in skip and (hit.day not in first or hit.start < first[hit.day].start):
                first[hit.day] = hit
        return sorted(first.values(), key=lambda h: h.start)

    def occurrences(self, hay: bytes) -> Iterator[DateHit]:
        """Every spelling of a removed day in ``hay`` (lower-cased), per byte form in turn."""
        if not self.days:
            return
        windows = _windows(hay)
        for encs in FORMS:
            for start, end in _candidates(hay, encs, windows[encs]):
                key = (hay[start:end], encs)
                if key not in self._seen:  # the same date often stands again (in each instance's header)
                    if len(self._seen) >= 4096:
                        self._seen.clear()
                    self._seen[key] = self._read(*key)
                found = self._seen[key]
                if found is not None:
                    yield from (DateHit(start, end, found[0], day) for day in found[1])

    def _read(self, raw: bytes, encs: tuple[str, ...]) -> tuple[str, list[dt.date]] | None:
        """The removed days a candidate is a spelling of, and the encoding it was read in."""
        for enc in encs:
            if enc == "latin-1" and raw.isascii():
                break  # read as UTF-8 already
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError:
                continue
            text = text.translate(_unlowered(enc))
            if not self._may_hold(text):
                continue
            text = unicodedata.normalize("NFC", text.casefold())
            days = [d for d in parse_any(text) if d in self.days and text in _spelling_set(d)]
            if days:
                return enc, days
        return None

    def _may_hold(self, text: str) -> bool:
        """Whether the candidate's numbers hold the year and the day of month of a removed date
        (as every spelling does; a compact one in one run): most candidates are not, and parsing
        each cost more than the regexes."""
        runs = _RUNS.findall(text.translate(_ASCII_DIGITS))
        runs += [p for r in runs if len(r) == 8 for p in (r[:4], r[6:], r[:2], r[2:4], r[4:])]
        return any((y, d) in self._pairs for y in runs for d in runs)


_RUNS = re.compile(r"[0-9]+")
_ASCII_DIGITS = str.maketrans(_FULLWIDTH, "0123456789")


@functools.lru_cache(maxsize=64)
def _spelling_set(day: dt.date) -> frozenset[str]:
    return frozenset(unicodedata.normalize("NFC", s.casefold()) for s in spellings(day))


@functools.cache
def longest_spelling() -> int:
    """Bytes of the longest spelling of any date, in any byte form (two-digit days, every month)."""
    return max(len(f.encode(enc)) for m in range(1, 13) for s in spellings(dt.date(2000, m, 28))
               for f in forms(s) for enc in ("utf-8", "utf-16-le") if encodable(f, enc))


# --- the candidate regexes -----------------------------------------------------------

def _alphabet() -> str:
    names = "".join(n for m in range(1, 13) for n in month_names(m))
    text = "0123456789" + _FULLWIDTH + "".join(_CJK) + _SEPARATORS + _NUMERIC_SEPARATORS + "stndrhe" + names
    return "".join(sorted({c for t in text for f in forms(t) for c in f}))


@functools.cache
def _unlowered(enc: str) -> dict[int, str]:
    """Characters that lower-casing the haystack's bytes made of another one in ``enc`` (in
    UTF-16, "号" U+53F7 has the byte of "S"), mapped back: a candidate is read back as text."""
    out: dict[int, str] = {}
    for c in _alphabet():
        for b in char_alts(c, enc):
            got = b.decode(enc)
            if got.casefold() != c.casefold() and len(got) == 1:
                out[ord(got)] = c
    return out


def _literals(text: str, encs: tuple[str, ...]) -> set[bytes]:
    """Every byte string ``text`` may be stored as (after lower-casing), in any of ``encs``."""
    out: set[bytes] = set()
    for form in forms(text):
        for enc in encs:
            alts = [char_alts(c, enc) for c in form]
            if all(alts):
                out.update(b"".join(p) for p in itertools.product(*alts))
    return out


def _alternation(lits: Iterable[bytes]) -> bytes:
    """A regex for any of ``lits``: a prefix trie, so a failed try costs a byte or two."""
    trie: dict = {}
    for lit in lits:
        node = trie
        for b in lit:
            node = node.setdefault(b, {})
        node[-1] = {}
    return _emit(trie)


def _emit(node: dict) -> bytes:
    branches = [re.escape(bytes([b])) + _emit(child) for b, child in sorted(node.items()) if b >= 0]
    if not branches:
        return b""
    body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
    return b"(?:" + body + b")?" if -1 in node else body


def _unit(chars: str, encs: tuple[str, ...]) -> bytes:
    """One character of ``chars``, as a group; a byte class where the forms differ in one byte
    only (digits: "[0-9]", in UTF-16 LE "[0-9]\\x00"), which the regex engine tries fastest."""
    lits = set().union(*(_literals(c, encs) for c in chars))
    if len({len(x) for x in lits}) == 1:
        n = len(next(iter(lits)))
        differ = [i for i in range(n) if len({x[i] for x in lits}) > 1]
        if len(differ) == 1:
            i = differ[0]
            rest = {x[:i] + x[i + 1:] for x in lits}
            if len(rest) == 1:
                x = next(iter(lits))
                cls = b"".join(re.escape(bytes([b])) for b in sorted({y[i] for y in lits}))
                return b"(?:" + re.escape(x[:i]) + b"[" + cls + b"]" + re.escape(x[i + 1:]) + b")"
    return b"(?:" + _alternation(lits) + b")"


@functools.cache
def _regexes(encs: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    """The candidate regexes for one byte form: digits first, a month name first, full-width digits first."""
    d, dot = _unit("0123456789", encs), _unit(".", encs)
    sep, numsep, space = _unit(_SEPARATORS, encs), _unit(_NUMERIC_SEPARATORS, encs), _unit(" ", encs)
    year, month, day = (_unit(c, encs) for c in _CJK)
    name = b"(?:" + _alternation(set().union(*(_literals(n, encs) for m in range(1, 13) for n in month_names(m)))) + b")"
    ordinal = b"(?:" + _alternation(set().union(*(_literals(o, encs) for o in ("st", "nd", "rd", "th", "er")))) + b")"
    de = b"(?:" + _alternation(_literals("de ", encs)) + b")"
    end = b"(?!" + d + b")(?!" + dot + d + b")"  # not followed by a digit or a dotted number
    # A compact date may go on as a DICOM DT's time of day (20191231120000.000000): HH, HHMM or
    # HHMMSS and a fraction, then the end; any other digits after it make it another number.
    t0, t05, t06 = _unit("012", encs), _unit("012345", encs), _unit("0123456", encs)
    time_of_day = b"(?:" + t0 + d + b"(?:" + t05 + d + b"(?:" + t06 + d + b"(?:" + dot + d + b"{1,6})?)?)?)?"
    digits_first = (
        d + b"(?<!" + d + d + b")(?<!" + d + dot + d + b")(?:"  # the first digit of a run, not after "1."
        + d + b"{0,3}(?P<s>" + numsep + b")" + d + b"{1,2}(?P=s)" + d + b"{1,4}" + end  # 2019-12-31, 31.12.19
        + b"|" + d + b"{7}(?=" + time_of_day + end + b")"  # 20191231, 31122019, 20191231120000
        + b"|" + d + b"{3}" + year + space + b"?" + d + b"{1,2}" + month + space + b"?" + d + b"{1,2}" + day + end
        + b"|" + d + b"?" + ordinal + b"?" + dot + b"?" + sep + b"{0,2}" + de + b"?" + name + sep + b"{0,2}"
        + de + b"?" + d + b"{2}(?:" + d + b"{2})?" + end  # 31st Dec. 2019, 31 de diciembre de 2019
        + b"|" + d + b"{3}" + sep + b"?" + name + sep + b"?" + d + b"{1,2}" + end  # 2019-Dec-31
        + b")")
    name_first = name + sep + b"?" + d + b"{1,2}" + ordinal + b"?" + sep + b"{1,2}" + d + b"{4}" + end
    fw = _unit(_FULLWIDTH, encs)
    full_width = fw + fw + b"{3}" + year + space + b"?" + fw + b"{1,2}" + month + space + b"?" + fw + b"{1,2}" + day + end
    before = b"(?:" + d + b"|" + d + dot + b")\\Z"  # what may not stand before a date
    # the three start with a digit, a letter and a full-width digit: at most one matches at a place
    one = b"(?:" + digits_first + b")|(?:" + name_first + b")|(?:" + full_width + b")"
    return tuple(re.compile(x, re.S) for x in (before, one, digits_first, name_first, full_width))


def _windows(hay: bytes) -> dict[tuple[str, ...], list[tuple[int, int]]]:
    """Per byte form, where dates may stand in ``hay``: around each pair of digits (every
    spelling has a year of two digits or more), as far as the longest spelling and what is
    looked at beside it. Random bytes hold such a pair every 650 bytes, so the regexes read a
    sixth of them; text dense with numbers is read whole."""
    n = len(hay)
    h = np.frombuffer(hay + bytes(8), dtype=np.uint8)  # zeros after the end: indexes past it stay inside
    digit = (h >= 48) & (h <= 57)
    two = np.flatnonzero(digit[:-2] & digit[2:])  # digits two bytes apart: UTF-16 "19"
    two = two[(two >= 1) & (two < n)]
    # full-width digits: EF BC 90-99 in UTF-8, 10-19 FF in UTF-16 LE, FF 10-19 in BE
    ef = np.flatnonzero(h[:n] == 0xEF)
    ef = ef[(h[ef + 1] == 0xBC) & (h[ef + 2] >= 0x90) & (h[ef + 2] <= 0x99) & (h[ef + 3] == 0xEF) & (h[ef + 4] == 0xBC)
            & (h[ef + 5] >= 0x90) & (h[ef + 5] <= 0x99)]
    ff = np.flatnonzero(h[:n] == 0xFF)
    ff = ff[(h[ff + 2] == 0xFF) & (ff >= 1)]
    fw_le, fw_be = ff[(h[ff - 1] >= 0x10) & (h[ff - 1] <= 0x19) & (h[ff + 1] >= 0x10) & (h[ff + 1] <= 0x19)], \
        ff[(h[ff + 1] >= 0x10) & (h[ff + 1] <= 0x19) & (h[ff + 3] >= 0x10) & (h[ff + 3] <= 0x19)]
    anchors = {FORMS[0]: (np.flatnonzero(digit[:n - 1] & digit[1:n]), ef),
               FORMS[1]: (two[(h[two + 1] == 0) & (h[two + 3] == 0)], fw_le),
               FORMS[2]: (two[(h[two - 1] == 0) & (h[two + 1] == 0)], fw_be)}
    reach = longest_spelling() + 8  # and a dotted number's digit after it
    out = {}
    for encs, (at, full_width) in anchors.items():
        if len(full_width):
            at = np.sort(np.concatenate([at, full_width]))
        starts, ends = np.maximum(at - reach, 0), np.minimum(at + reach, n)
        cut = np.flatnonzero(starts[1:] > ends[:-1]) + 1  # windows apart from the one before
        out[encs] = list(zip(starts[np.r_[0, cut]].tolist(), ends[np.r_[cut - 1, len(at) - 1]].tolist())) \
            if len(at) else []
    return out


def _candidates(hay: bytes, encs: tuple[str, ...], windows: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """(start, end) of every date-shaped substring in the windows, overlapping ones too ("août 5
    2019" holds "out 5 2019", "31 12 2019 12 31" two dates), that stands apart from digits before
    it. What stands before a window is seen; the window's end is as far as a match sees."""
    width = 2 if encs[0].startswith("utf-16") else 1
    digit_at = 1 if encs[0] == "utf-16-be" else 0  # where a digit unit has its digit byte
    before, one, *shapes = _regexes(encs)
    for lo, hi in windows:
        # a short window in one pass; a long one in three, each of which skips ahead to its first byte
        for rx in ((one,) if hi - lo < 2048 else shapes):
            pos = lo
            while (m := rx.search(hay, pos, hi)) is not None:
                start = m.start()
                pos = start + 1
                # the digits-first regex looks before itself; the others are looked at here
                if 48 <= hay[start + digit_at] <= 57 or not before.search(hay, max(0, start - 2 * width), start):
                    yield start, m.end()
