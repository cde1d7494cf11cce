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

- English: the SCOWL size-50 list of Debian's ``wamerican`` package
  (``/usr/share/dict/american-english``, installed by scripts/setup.sh),
  its lower-case entries only: capitalised entries are proper nouns.
  When no list is installed, no word counts as English and every pair of
  capitalised words outside the label vocabulary stays a candidate:
  more flags, never fewer.
- Names: the 1990 US Census given names and surnames (public domain),
  shipped in ``lexicon/`` (scripts/make_name_lexicon.py), plus the
  bundled international lists of ``names.py``.

The lists load on first use (about 30 ms), so a scan that meets no
capitalised pair pays nothing.
"""
from __future__ import annotations

from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from .label_vocab import LABEL_WORDS, STAIN_EPONYMS
from .names import GIVEN_NAMES, SURNAMES

# The first that exists is read; the order keeps results the same on
# machines that have several.
ENGLISH_WORD_LISTS = (
    Path("/usr/share/dict/american-english"),
    Path("/usr/share/dict/british-english"),
)
CENSUS_FILES = ("census1990_given.txt", "census1990_surnames.txt")


class WordKind(Enum):
    """What one capitalised word is, for the name test."""

    LABEL = "label vocabulary"
    NAME = "a known given name or surname"
    ENGLISH = "a common English word"
    UNKNOWN = "in no word list"


EXCUSING = frozenset({WordKind.LABEL, WordKind.ENGLISH})


@cache
def known_names() -> frozenset[str]:
    """Given names and surnames, upper case: census and bundled lists."""
    folder = resources.files(__package__) / "lexicon"
    words: set[str] = set(GIVEN_NAMES) | set(SURNAMES)
    for name in CENSUS_FILES:
        words.update((folder / name).read_text(encoding="ascii").split())
    return frozenset(words)


@cache
def english_words() -> frozenset[str]:
    """Lower-case entries of the first installed English list, upper-cased; empty if none is."""
    for path in ENGLISH_WORD_LISTS:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        return frozenset(w.upper() for w in text.split() if w.islower() and w.isalpha())
    return frozenset()


def english_list() -> Path | None:
    """The English list in use, for documentation and diagnostics."""
    return next((p for p in ENGLISH_WORD_LISTS if p.is_file()), None)


def word_kind(word: str) -> WordKind:
    """Label vocabulary first (a stain's word is judged as one: Congo *Red*,
    Alcian *Blue* are census surnames too), then names, then stain eponyms
    that are nobody's name, then English."""
    w = word.upper()
    if w in LABEL_WORDS:
        return WordKind.LABEL
    if w in known_names():
        return WordKind.NAME
    if w in STAIN_EPONYMS:
        return WordKind.LABEL
    if w in english_words():
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
