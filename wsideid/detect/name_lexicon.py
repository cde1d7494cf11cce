"""Is a pair of capitalised words a person's name? A lexicon test that fails closed.

Why a lexicon and not "two capitalised words": a label says "Teaching
Set" or "Second Opinion" as often as "Cordelia Tremblay", and only word
lists tell them apart. Why fail closed: a name list never holds every
name, so the test asks the opposite question. A pair is excused only when
*every* word is known to be something else: label vocabulary
(``label_vocab.LABEL_WORDS``) or a common English word that is nobody's
given name or surname. Any other word keeps the pair a name candidate:

- a known given name or surname, even when it is also an English word
  (Rose, Crystal, Baker, Young, Gill), and so a stain eponym that is one
  (Mayer, Gill, Mallory); an eponym that is in no name list (Nissl,
  Feulgen, Gomori) is label vocabulary;
- an unknown word, in no list at all: a foreign name, an OCR misspelling,
  an unlisted eponym. Nothing unknown passes.

Sources (provenance and licences in docs/detectors.md, "Word lists"):

- English: SCOWL, Debian's ``wamerican-large`` and ``wbritish-large``
  (size 70; the size-50 ``wamerican``/``wbritish`` lists when the large
  ones are missing), and the medical word list OpenMedSpel
  (``hunspell-en-med``), installed by scripts/setup.sh; lower-case
  entries only: capitalised entries are proper nouns (Lugol, Fallopius). When no list is installed, no
  word counts as English and every pair of capitalised words outside the
  label vocabulary stays a candidate: more flags, never fewer.
- Names: the 1990 US Census given names and surnames (public domain),
  shipped in ``lexicon/`` (scripts/make_name_lexicon.py), plus the
  bundled international lists of ``names.py``.

The lists are read on first use as bytes and searched (about 15 ms CPU to
read, about 1 ms a word), so a scan that meets no capitalised pair
outside the label vocabulary pays nothing.
"""
from __future__ import annotations

import re
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from .label_vocab import LABEL_WORDS, STAIN_EPONYMS
from .names import GIVEN_NAMES, SURNAMES

# One list per spelling, the first installed of each (union: labels come
# from American and British labs alike, "Fibres", "Haematoxylin"); the large
# lists (SCOWL 70) hold the laboratory words the size-50 ones lack
# (phosphatase, oxidase) and contain them.
# The medical list (OpenMedSpel, hunspell-en-med: cytopathology,
# intraoperative, trypan) is a hunspell dictionary: its "/FLAGS" suffixes are
# cut, so only the base forms count.
ENGLISH_WORD_LISTS = (
    (Path("/usr/share/dict/american-english-large"), Path("/usr/share/dict/american-english")),
    (Path("/usr/share/dict/british-english-large"), Path("/usr/share/dict/british-english")),
    (Path("/usr/share/hunspell/en_med_glut.dic"),),
)
CENSUS_FILES = ("census1990_given.txt", "census1990_surnames.txt")
# A word that is also common English is taken for a name only when at least
# one person in 20,000 carries it (census share, percent): Young, Baker,
# Rose, Gill, Crystal, Case, Hope are names; Bank, Board, Room, Manual are
# words. A name that is no English word needs no share at all.
COMMON_NAME_PERCENT = 0.005


class WordKind(Enum):
    """What one capitalised word is, for the name test."""

    LABEL = "label vocabulary"
    NAME = "a known given name or surname"
    ENGLISH = "a common English word"
    UNKNOWN = "in no word list"


EXCUSING = frozenset({WordKind.LABEL, WordKind.ENGLISH})


@cache
def census_text() -> bytes:
    """The shipped census lists ("NAME PERCENT" lines), framed by newlines;
    searched like the English lists (no 24,000-entry dict to build)."""
    folder = resources.files(__package__) / "lexicon"
    return b"\n" + b"".join((folder / name).read_bytes() for name in CENSUS_FILES)


@cache
def name_share(word: str) -> float | None:
    """Census share (percent, the largest of a word's entries) of an upper-case
    name; the bundled international lists count as common; None for no name."""
    if word in GIVEN_NAMES or word in SURNAMES:
        return float("inf")
    text, key, best, at = census_text(), b"\n" + word.encode("ascii", "replace") + b" ", None, 0
    while (at := text.find(key, at)) >= 0:
        end = text.find(b"\n", at + 1)
        share = float(text[at + len(key):end])
        best = share if best is None else max(best, share)
        at = end
    return best


@cache
def english_text() -> bytes:
    """The installed English lists, one entry a line, framed by newlines;
    empty when none is installed. Kept as bytes and searched, not split
    into a set: reading takes ~2 ms where building a 230,000-word set took
    ~90 ms CPU, and a label asks about a handful of words."""
    parts = [re.sub(rb"/[^\n]*", b"", p.read_bytes()) for p in english_lists()]
    return b"\n" + b"\n".join(parts) + b"\n" if parts else b""


@cache
def is_english(word: str) -> bool:
    """Is ``word`` (any case) a lower-case entry of the English lists? Capitalised
    entries are proper nouns and do not count."""
    w = word.lower()
    return w.isalpha() and w.isascii() and b"\n" + w.encode() + b"\n" in english_text()


def english_lists() -> list[Path]:
    """The English lists in use: the first installed of each spelling."""
    found = (next((p for p in family if p.is_file()), None) for family in ENGLISH_WORD_LISTS)
    return [p for p in found if p is not None]


def word_kind(word: str) -> WordKind:
    """Label vocabulary first (a stain's word is judged as one: Congo *Red*,
    Alcian *Blue* are census surnames too), then names (a common one even if
    it is an English word), then stain eponyms that are nobody's name, then
    English."""
    w = word.upper()
    if w in LABEL_WORDS:
        return WordKind.LABEL
    english = is_english(w)
    share = name_share(w)
    if share is not None and (not english or share >= COMMON_NAME_PERCENT):
        return WordKind.NAME
    if w in STAIN_EPONYMS:
        return WordKind.LABEL
    if english:
        return WordKind.ENGLISH
    return WordKind.UNKNOWN


def name_reason(words: Iterable[str]) -> str | None:
    """Why these words may be a person's name, or None when every word is
    excused (label vocabulary or English that is nobody's name)."""
    for w in words:
        kind = word_kind(w)
        if kind not in EXCUSING:
            return f"'{w}' is {kind.value}"
    return None
