"""The lexicon name test (detect/name_lexicon.py): capitalised pairs and
LAST, FIRST are names unless every word is label vocabulary or common
English that is nobody's name. Fails closed: a known name or an unknown word
keeps the pair a candidate, and without an English list nothing is excused."""
from __future__ import annotations

import pytest

from wsideid.detect import name_lexicon
from wsideid.detect.name_lexicon import WordKind, word_kind
from wsideid.detect.phi_text import classify_text

needs_english = pytest.mark.skipif(not name_lexicon.english_text(),
                                   reason="no English word list (apt wamerican, scripts/setup.sh)")


def named(text: str) -> bool:
    return any(f.category == "name" for f in classify_text(text))


@needs_english
@pytest.mark.parametrize("text", ["Teaching Set", "Second Opinion", "Quality Assurance", "External Consult",
                                  "Outside Review", "SERIAL SECTIONS", "Digital Scan", "LIVER, BIOPSY"])
def test_everyday_phrases_are_not_names(text):
    """Two capitalised English words that are nobody's name: flagged before the lexicon."""
    assert not named(text)


@pytest.mark.parametrize("text", ["Crystal Gill", "MAYER, KEISHA", "Keisha Mayer", "Rose Baker", "YOUNG, HOPE",
                                  "Dawn Frost", "Ivy Stone", "GILL, CRYSTAL"])
def test_names_that_are_also_english_words_stay_names(text):
    assert named(text)


@pytest.mark.parametrize("text", ["Zbigniew Brzezinski", "Oluwaseun Mbatha", "Thandiwe Okonjo", "QWERTZ, ANNALIESE",
                                  "Tesching Set", "EZEKIEL DRAGOMIR"])
def test_unknown_words_keep_a_pair_a_name(text):
    """A word in no list (a foreign name, an OCR misspelling) never excuses a pair."""
    assert named(text)


def test_word_kinds():
    assert word_kind("Trichrome") is WordKind.LABEL
    assert word_kind("Red") is WordKind.LABEL  # Congo Red: a stain word first, though a census surname too
    assert word_kind("Nissl") is WordKind.LABEL  # an eponym in no name list
    assert word_kind("Gill") is WordKind.NAME  # an eponym that is a surname
    assert word_kind("Crystal") is WordKind.NAME
    assert word_kind("Wojtaszczyk") is WordKind.UNKNOWN
    if name_lexicon.english_text():
        assert word_kind("Teaching") is WordKind.ENGLISH
        assert word_kind("Bank") is WordKind.ENGLISH  # a surname, but of fewer than 1 in 20,000 people
        assert word_kind("Case") is WordKind.NAME and word_kind("Hope") is WordKind.NAME  # common ones


def test_without_an_english_list_nothing_is_excused(monkeypatch, tmp_path):
    """A machine without the word list flags more, never less."""
    for f in (name_lexicon.english_text, name_lexicon.english_index, name_lexicon.is_english):
        f.cache_clear()
    monkeypatch.setattr(name_lexicon, "ENGLISH_WORD_LISTS", ((tmp_path / "missing",),))
    try:
        assert name_lexicon.english_text() == b""
        assert named("Teaching Set") and named("Second Opinion")
        assert not named("Congo Red")  # label vocabulary still excuses
    finally:
        for f in (name_lexicon.english_text, name_lexicon.english_index, name_lexicon.is_english):
            f.cache_clear()


def test_census_lists_ship_in_the_package():
    share = name_lexicon.name_share
    assert all(share(n) for n in ("SMITH", "BAKER", "YOUNG", "GILL", "MAYER", "CRYSTAL", "ROSE", "KEISHA"))
    assert name_lexicon.census_text().count(b"\n") > 20000
    assert share("SMITH") > 1.0 and share("GILL") >= name_lexicon.COMMON_NAME_PERCENT > share("BANK")
    assert share("TEACHING") is None and share("OPINION") is None


@needs_english
def test_institution_with_an_unknown_word_is_a_candidate():
    """Retain Institution Identity keeps a name only when the classifier sees no PHI in it:
    an institution named by a word in no list ("Quokka Research Hospital") is now removed
    (fail closed), one of English words is kept (the DICOM answer key's fixture)."""
    assert named("Quokka Research Hospital")
    assert not named("Riverside Research Hospital")


@pytest.mark.parametrize("text", ["Carmine Schiff", "SCHIFF, CARMINE", "Carmine Fontana"])
def test_stain_words_that_are_names_do_not_excuse_a_name(text):
    """Carmine (a given name) and Schiff (a surname) were label words, so a patient named
    after two stain words passed unflagged; they are eponyms now, the stains phrases."""
    assert named(text)


@pytest.mark.parametrize("text", ["Periodic Acid Schiff", "PERIODIC ACID-SCHIFF", "Neutral Carmine", "Best Carmine"])
def test_stains_named_by_those_words_still_read_as_stains(text):
    assert not named(text)


def test_label_words_are_no_common_given_name():
    """A label word excuses its half of a pair whatever the name lists say: one that is also a
    common given name must be a reviewed exception (Brain, Van as in Van Gieson)."""
    from importlib import resources

    from wsideid.detect.label_vocab import LABEL_WORDS
    lines = (resources.files("wsideid.detect") / "lexicon" / "census1990_given.txt").read_text().split("\n")
    given = {ln.split()[0]: float(ln.split()[1]) for ln in lines if ln.strip()}
    common = {w for w in LABEL_WORDS if given.get(w, 0) >= name_lexicon.COMMON_NAME_PERCENT}
    assert common <= {"BRAIN", "VAN"}, sorted(common)
