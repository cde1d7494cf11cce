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
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Sequence

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
CENSUS_GIVEN_FILE = CENSUS_FILES[0]
# Common English, for the ordinary-pair rule (``surname_only_common_word``):
# SCOWL size 50 (Debian ``wamerican``), the size its author calls the common
# words of the language (sizes are frequency tiers; 70 adds the rarer ones).
# A frequency list chosen over wordfreq: it is installed already, costs no
# 30 MB package and no ~100 ms load, and its tiers are what "common" means here.
COMMON_ENGLISH_LISTS = (Path("/usr/share/dict/american-english"),)
# Words of stain names in the DICOM standard (CID 8112 and SNOMED CT stain
# concepts), generated from pydicom by scripts/make_stain_lexicon.py; an
# independent vocabulary, apart from label_vocab.py's hand-made sets.
DICOM_STAINS_FILE = "dicom_stains.txt"
# Their head words (the word before "stain": trichrome, eosin, blue), same source.
DICOM_STAIN_HEADS_FILE = "dicom_stain_heads.txt"
# The stain names whole ("JENNER GIEMSA STAIN", "MALLORY BLEACH STAIN"), same source.
DICOM_STAIN_PHRASES_FILE = "dicom_stain_phrases.txt"
# A word that is also common English is taken for a name only when at least
# one person in 20,000 carries it (census share, percent): Young, Baker,
# Rose, Gill, Crystal, Case, Hope are names; Bank, Board, Room, Manual are
# words. A name that is no English word needs no share at all.
COMMON_NAME_PERCENT = 0.005
# OCR error model: an unknown word of at least this many letters that is one
# edit from an English word and from no name is taken for that word misread
# ("Dermatopatholoy" -> dermatopathology). At 6 letters it also excused the
# real name "Perpetua Thorn" (perpetual) for 7 fewer false flags in 300
# labels; at 10 a name must be long, unlisted and one letter from a word.
MISREAD_MIN_LETTERS = 10


class WordKind(Enum):
    """What one capitalised word is, for the name test."""

    LABEL = "label vocabulary"
    NAME = "a known given name or surname"
    STAIN = "a word of a stain name in the DICOM standard"
    ENGLISH = "a common English word"
    MISREAD = "an English word misread (one edit from it and from no name)"
    METHOD_EPONYM = "a word in no list named before a method noun or a stain's head word (X Stain, X Trichrome)"
    UNKNOWN = "in no word list"


EXCUSING = frozenset({WordKind.LABEL, WordKind.STAIN, WordKind.ENGLISH, WordKind.MISREAD, WordKind.METHOD_EPONYM})
# Kinds that say a word is a laboratory word (not merely English), for the
# ordinary-pair rule. Not METHOD_EPONYM: that word is in no list, and an
# unlisted word may be a given name.
DOMAIN = frozenset({WordKind.LABEL, WordKind.STAIN})
# Head nouns of histological method names: "Lugol Reaction", "Marchi Method",
# "Hortega Stain" name a method after a person. A word in *no* list right
# before one of them is taken for such an eponym; a known name never is.
METHOD_NOUNS = frozenset({"STAIN", "STAINS", "STAINING", "METHOD", "REACTION", "TECHNIQUE", "IMPREGNATION"})


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
def dicom_stain_words() -> frozenset[str]:
    """The generated DICOM stain words (upper case; ~200, read once, ~0.1 ms)."""
    text = (resources.files(__package__) / "lexicon" / DICOM_STAINS_FILE).read_text()
    return frozenset(ln for ln in text.splitlines() if ln and not ln.startswith("#"))


@cache
def dicom_stain_heads() -> frozenset[str]:
    """Head words of the DICOM stain names (upper case, generated with the words)."""
    text = (resources.files(__package__) / "lexicon" / DICOM_STAIN_HEADS_FILE).read_text()
    return frozenset(ln for ln in text.splitlines() if ln and not ln.startswith("#"))


@cache
def dicom_stain_phrases() -> tuple[str, ...]:
    """The DICOM stain names whole (upper case, words space-separated)."""
    text = (resources.files(__package__) / "lexicon" / DICOM_STAIN_PHRASES_FILE).read_text()
    return tuple(ln for ln in text.splitlines() if ln and not ln.startswith("#"))


@cache
def census_given_text() -> bytes:
    """The shipped census given-name list alone ("NAME PERCENT" lines), framed by newlines."""
    return b"\n" + (resources.files(__package__) / "lexicon" / CENSUS_GIVEN_FILE).read_bytes()


def is_given_name(word: str) -> bool:
    """Is ``word`` a given name: a census given name at any share, or a bundled one?"""
    w = word.upper()
    return w in GIVEN_NAMES or b"\n" + w.encode("ascii", "replace") + b" " in census_given_text()


@cache
def common_english_text() -> bytes:
    """The common-English list (SCOWL 50), framed by newlines; empty when not installed."""
    found = [p.read_bytes() for p in COMMON_ENGLISH_LISTS if p.is_file()]
    return b"\n" + b"\n".join(found) + b"\n" if found else b""


def surname_only_common_word(word: str) -> bool:
    """A census surname that is also a common English word and nobody's given name
    (Case, Gross, Sweet, Room): alone it says no more than the word does.

    Not a bundled name (names.py holds the surnames flagged even alone), not a
    census or bundled given name (Wade, Gordon, Herman, Hope, Rose stay names),
    and a lower-case entry of the common-English list (SCOWL 50). With no list
    installed no word qualifies: fail closed.
    """
    w = word.upper()
    if w in SURNAMES or w in GIVEN_NAMES or is_given_name(w) or not (w.isalpha() and w.isascii()):
        return False
    return b"\n" + w.lower().encode() + b"\n" in common_english_text()


def is_name(word: str) -> bool:
    """Is ``word`` a given name or surname in any list (census at any share, bundled)?"""
    return name_share(word.upper()) is not None


def is_stain_head(word: str) -> bool:
    """Does ``word`` name what a stain is (Stain, Method, Trichrome, Eosin) and
    nobody? A head that is a name in any list (Silver, Green, Wright) is not."""
    w = word.upper()
    return w in METHOD_NOUNS or (w in dicom_stain_heads() and not is_name(w))


@cache
def english_text() -> bytes:
    """The installed English lists, one entry a line, framed by newlines;
    empty when none is installed. Kept as bytes and searched, not split
    into a set: reading takes ~2 ms where building a 230,000-word set took
    ~90 ms CPU, and a label asks about a handful of words."""
    parts = [re.sub(rb"/[^\n]*", b"", p.read_bytes()) for p in english_lists()]
    return b"\n" + b"\n".join(parts) + b"\n" if parts else b""


@cache
def english_index() -> bytes | None:
    """The lower-case entries of :func:`english_text`, sorted (:mod:`.word_index`: kept in
    the user cache, so a process reads ~2 MB instead of stripping 4.3 MB of lists); None
    without a cache folder to keep it in."""
    from . import word_index
    return word_index.load(english_lists(), english_text)


@cache
def is_english(word: str) -> bool:
    """Is ``word`` (any case) a lower-case entry of the English lists? Capitalised
    entries are proper nouns and do not count. Looked up in :func:`english_index`, or
    searched in :func:`english_text` without one (the same answer)."""
    from .word_index import contains
    w = word.lower()
    if not (w.isalpha() and w.isascii()):
        return False
    index = english_index()
    return contains(index, w.encode()) if index is not None else b"\n" + w.encode() + b"\n" in english_text()


def english_lists() -> list[Path]:
    """The English lists in use: the first installed of each spelling."""
    found = (next((p for p in family if p.is_file()), None) for family in ENGLISH_WORD_LISTS)
    return [p for p in found if p is not None]


def word_kind(word: str) -> WordKind:
    """Label vocabulary first (a stain's word is judged as one: Congo *Red*,
    Alcian *Blue* are census surnames too), then names (a common one even if
    it is an English word), then stain eponyms that are nobody's name, then
    the DICOM standard's stain words (after names, so Wright, Jenner,
    Leishman, Evans stay names however many stains carry them), then
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
    if w in dicom_stain_words():
        return WordKind.STAIN
    if english:
        return WordKind.ENGLISH
    if misread_english(w) is not None:
        return WordKind.MISREAD
    return WordKind.UNKNOWN


def _one_edit_entries(text: bytes, word: bytes, end: bytes) -> Iterator[bytes]:
    """Entries of a newline-framed list (each ending with ``end``) one edit
    (substitution, deletion, insertion, transposition) from ``word``.

    An edit at position i < k leaves the word's tail after k intact, one at
    i >= k its head before k; so only entries sharing that head or tail are
    compared: a few thousand byte searches (~5 ms on the English lists), no
    250,000-word set to build (~90 ms CPU and ~20 MB).
    """
    k = (len(word) - 1) // 2
    head, tail = b"\n" + word[:k], word[k + 1:] + end
    at = 0
    while (at := text.find(head, at)) >= 0:
        stop = text.find(end, at + 1)
        entry, at = text[at + 1:stop], stop
        if _one_edit_apart(entry, word):
            yield entry
    at = 0
    while (at := text.find(tail, at)) >= 0:
        entry = text[text.rfind(b"\n", 0, at) + 1:at + len(tail) - len(end)]
        at += len(tail)
        if _one_edit_apart(entry, word):
            yield entry


def _one_edit_apart(a: bytes, b: bytes) -> bool:
    """At most one substitution, deletion, insertion or transposition apart."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) <= 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


@cache
def misread_english(word: str) -> str | None:
    """The English word an unknown ``word`` is an OCR misreading of, or None.

    Taken only when the word has at least MISREAD_MIN_LETTERS letters, is one
    edit from a lower-case English entry, and is one edit from no name: no
    census given name or surname and no bundled name. So a name that OCR
    garbled by one letter ("Wilhelming" for Wilhelmina, "Smitn") is still
    next to its name and stays a candidate; a garbled name that lands next
    to an English word and next to no listed name would pass: the risk is
    written in docs/threat-model.md.
    """
    w = word.lower()
    if len(w) < MISREAD_MIN_LETTERS or not (w.isalpha() and w.isascii()):
        return None
    hit = next(_one_edit_entries(english_text(), w.encode(), b"\n"), None)
    if hit is None:
        return None
    up = w.upper().encode()
    if next(_one_edit_entries(census_text(), up, b" "), None) is not None:
        return None
    if any(_one_edit_apart(up, n.encode()) for n in GIVEN_NAMES | SURNAMES):
        return None
    return hit.decode()


@dataclass(frozen=True)
class InContext:
    """A word with what follows it on its line: ``tail``, a lower-case fragment
    after one space ("Phl oxine": OCR split a word at a letter gap), and
    ``next_word``, the next word."""

    word: str
    tail: str = ""
    next_word: str = ""


def judge(item: str | InContext) -> WordKind:
    """A word's kind, its context considered only when it is in no list.

    Context never excuses a known name: a listed name stays NAME whatever
    follows. A word in no list is judged as joined with its tail when that
    makes a listed word ("Phl oxine" -> Phloxine; "Her man" -> Herman, a
    name), else as an eponym when a method noun or the head word of a DICOM
    stain name that is nobody's name follows ("Cajal Trichrome").
    """
    w = item if isinstance(item, str) else item.word
    kind = word_kind(w)
    if kind is not WordKind.UNKNOWN or isinstance(item, str):
        return kind
    if item.tail and (joined := word_kind(w + item.tail)) is not WordKind.UNKNOWN:
        return joined
    if item.next_word and is_stain_head(item.next_word):
        return WordKind.METHOD_EPONYM
    return kind


def name_reason(words: Iterable[str | InContext]) -> str | None:
    """Why these words may be a person's name, or None when every word is
    excused (label vocabulary or English that is nobody's name)."""
    for item in words:
        kind = judge(item)
        if kind not in EXCUSING:
            w = item if isinstance(item, str) else item.word
            return f"'{w}' is {kind.value}"
    return None


def pair_name_reason(words: Sequence[str | InContext]) -> str | None:
    """``name_reason`` for two or more capitalised words side by side, with the
    ordinary-pair rule: the pair is excused when every word but one is a
    laboratory word (label vocabulary, a DICOM stain word) that is nobody's
    given name, and that one is a surname-only
    common English word (``surname_only_common_word``): "Sweet Reticulin",
    "Wilder Reticulin". Such a pair holds no given name and one name word, so
    it is no given+family pair; a person written by surname alone beside a
    laboratory word is what passes (docs/threat-model.md).

    Not widened to any common English word beside the surname ("Consult
    Case"): on the label bench that excused the real name "HYACINTH COTTON"
    (Hyacinth is English and in no given-name list). Not used for "LAST,
    FIRST", a name's own form.
    """
    why = name_reason(words)
    if why is None or len(words) < 2:
        return why
    kinds = [judge(item) for item in words]
    flagged = [item for item, kind in zip(words, kinds) if kind not in EXCUSING]
    if len(flagged) != 1:
        return why
    word = flagged[0] if isinstance(flagged[0], str) else flagged[0].word
    if not surname_only_common_word(word):
        return why
    others = [_as_laboratory_word(item, kind) for item, kind in zip(words, kinds) if item is not flagged[0]]
    return None if all(kind in DOMAIN and not is_given_name(w) for w, kind in others) else why


def _as_laboratory_word(item: str | InContext, kind: WordKind) -> tuple[str, WordKind]:
    """A word and its kind, joined with the lower-case fragment OCR split off it
    when the join is a laboratory word ("Reticul in" -> Reticulin; "reticul"
    alone is an entry of the medical list, so ``judge`` never joins it)."""
    if isinstance(item, str):
        return item, kind
    if kind not in DOMAIN and item.tail and (joined := word_kind(item.word + item.tail)) in DOMAIN:
        return item.word + item.tail, joined
    return item.word, kind
