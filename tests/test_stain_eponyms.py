"""Issue 16, sixth session: the stain-eponym lexicon and the ordinary-pair rule.

Each rule has tests that fail without it (a stain or laboratory phrase no
longer flagged) and tests that the fail-closed rule holds around it (a real
name beside a stain word, an eponym with other PHI on its line, a name in
another order, a given name in the pair).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from wsideid.detect import name_lexicon, stain_eponyms
from wsideid.detect.phi_text import classify_text


def named(text: str) -> bool:
    return any(f.category == "name" for f in classify_text(text))


# -- the eponym lexicon -----------------------------------------------------

@pytest.mark.parametrize("text", [
    "Gordon Sweet", "Gordon & Sweet", "Gordon and Sweet's Reticulin", "GORDON & SWEETS", "Wade Fite", "WADE-FITE",
    "Holzer Glial", "Holzer Stain", "Hale Colloidal Iron", "Job-Chacko", "Weil Davenport",
])
def test_whole_eponym_is_no_name(text):
    assert not named(text), text


@pytest.mark.parametrize("text", [
    "Gordon Sweet 12/03/1950",      # a date on the line
    "Gordon Sweet S24-12345",       # an accession on the line
    "Wade Fite MRN 12345678",       # an MRN on the line
    "Name: Gordon Sweet",           # a labelled field
    "Sweet, Gordon",                # another order: LAST, FIRST
    "Sweet Gordon",
    "Crystal Gordon Sweet",         # a third name around the eponym
    "Gordon Sweet Hope",            # a given name after it
    "Ann Hale",                     # a one-name eponym without what it stains
    "Hale Ann",
    "Holzer Brigitte",
    "Mayer Method",                 # a method noun the source does not write after it
    "Mayer Stain",
])
def test_eponym_does_not_excuse_a_person(text):
    assert named(text), text


def test_eponym_is_judged_per_line():
    flags = classify_text("Gordon Sweet\nS24-12345")
    assert [f.category for f in flags] == ["accession"]
    assert named("Gordon Sweet 1950-03-12\nReticulin")


def test_identifier_on_the_line_keeps_the_name():
    assert any(f.category == "name" for f in classify_text("Gordon Sweet RID-77", identifiers=["RID-77"]))
    assert not any(f.category == "name" for f in classify_text("Gordon Sweet", identifiers=["RID-77"]))


def test_every_entry_has_a_source_and_names():
    text = (Path(stain_eponyms.__file__).parent / "lexicon" / stain_eponyms.EPONYMS_FILE).read_text()
    rows = [ln.split("\t") for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(rows) >= 40
    for names, named_for, source in rows:
        assert names == names.upper() and names.split(), names
        assert named_for == "-" or all(w.isupper() for w in named_for.split(",")), named_for
        assert len(source) > 5, names
    assert stain_eponyms.source_of("Gordon Sweet") and stain_eponyms.source_of("Nobody Here") is None


def test_without_the_lexicon_the_eponym_is_flagged(monkeypatch):
    """The flag these tests expect gone is the pair rule's, not something else's."""
    monkeypatch.setattr(stain_eponyms, "eponym_spans", lambda up: [])
    assert named("Wade Fite") and named("Gordon Sweet") and named("Holzer Glial")


# -- the ordinary-pair rule ---------------------------------------------------

@pytest.mark.parametrize("text", ["Sweet Reticulin", "Wilder Reticulin", "SWEET RETICULIN", "Sweet Reticul in"])
def test_surname_only_word_beside_a_laboratory_word(text):
    assert not named(text), text


@pytest.mark.parametrize("text", [
    "HYACINTH COTTON",   # a real name: Hyacinth is English and in no given-name list
    "Consult Case",      # any common word beside the surname is not enough
    "Hope Reticulin",    # Hope is a given name
    "Gordon Reticulin",
    "Van Sweet",         # Van is label vocabulary and a given name
    "SWEET, RETICULIN",  # LAST, FIRST is a name's own form
    "Cotton Sweet",      # two name words
    "Ivy Sweet Reticulin",
    "Sweet Qorvath Stain",
    "Sweet Ros e",          # a split that joins into a given name is no laboratory word  # an unlisted word (a given name?) before a method noun is no laboratory word
])
def test_ordinary_pair_keeps_names(text):
    assert named(text), text


def test_ordinary_pair_needs_the_common_word_list(monkeypatch):
    """No SCOWL-50 list installed: no word is common, the pair stays flagged (fail closed)."""
    monkeypatch.setattr(name_lexicon, "COMMON_ENGLISH_LISTS", (Path("/nonexistent/american-english"),))
    name_lexicon.common_english_text.cache_clear()
    try:
        assert named("Sweet Reticulin")
    finally:
        name_lexicon.common_english_text.cache_clear()


def test_surname_only_common_word():
    assert name_lexicon.surname_only_common_word("Sweet")
    assert name_lexicon.surname_only_common_word("case")
    for w in ("Gordon", "Wade", "Herman", "Hope", "Holzer", "Reticulin", "Smith-Jones"):
        assert not name_lexicon.surname_only_common_word(w), w
