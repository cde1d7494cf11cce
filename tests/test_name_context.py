"""Context for words in no list (detect/name_lexicon.py ``judge``, phi_text.py), and the
DOB field without a colon.

A word in no list keeps a capitalised pair a name candidate, unless its context
explains it: OCR split it at a letter gap and the joined word is listed
("Phl oxine"), a method noun follows it ("Qorvath Stain"), or it is a long word
one edit from an English word and from no name (an OCR misreading). A known name
is never excused by context: each test that excuses a word has its counterpart
where a name stays flagged.
"""
from __future__ import annotations

import pytest

from wsideid.detect import name_lexicon
from wsideid.detect.name_lexicon import InContext, WordKind, judge, misread_english
from wsideid.detect.phi_text import classify_text

needs_english = pytest.mark.skipif(not name_lexicon.english_text(),
                                   reason="no English word list (apt wamerican, scripts/setup.sh)")


def flags(text: str, category: str = "name") -> list:
    return [f for f in classify_text(text) if f.category == category]


# --- a word OCR split at a letter gap ---------------------------------------------

@needs_english
@pytest.mark.parametrize("text", ["Hematoxylin Phl oxine", "Touch Impr int", "Ponceau Xyl idine"])
def test_a_split_word_is_judged_joined(text):
    assert not flags(text)


def test_a_split_name_joins_into_a_name():
    assert judge(InContext("Kowalcz", "yk")) is WordKind.NAME
    assert flags("Ezekiel Kowalcz yk")


def test_a_tail_never_excuses_a_known_name():
    """Only a word in no list is joined: 'Gill' stays a name whatever follows it."""
    assert judge(InContext("Gill", "ian")) is WordKind.NAME
    assert flags("Crystal Gill ian")


# --- a method noun after a word in no list ----------------------------------------

@pytest.mark.parametrize("text", ["Qorvath Stain", "QORVATH STAINING", "Qorvath Reaction", "Qorvath Method"])
def test_a_word_in_no_list_before_a_method_noun_is_an_eponym(text):
    assert not flags(text)


@pytest.mark.parametrize("text", ["Gordon Stain", "Kowalczyk Reaction", "Mayer Method", "Stain Qorvath",
                                  "Ezekiel Qorvath Stain", "Name: Qorvath Stain", "QORVATH, STAIN"])
def test_a_method_noun_never_excuses_a_name(text):
    """A listed name before the noun, a word after it, a pair before it, a labelled field, LAST, FIRST."""
    assert flags(text)


# --- OCR misreadings --------------------------------------------------------------

@needs_english
def test_a_long_misreading_of_an_english_word_is_that_word():
    assert misread_english("Dermatopatholoy") == "dermatopathology"
    assert not flags("Dermatopatholoy Service")


@pytest.mark.parametrize("word", ["Perpetua", "Scaned", "Wilhelming", "Jonhsonn", "Tremblayy"])
def test_misreadings_that_stay_candidates(word):
    """Shorter than 10 letters (Perpetua is a name one edit from 'perpetual'), or one edit
    from a census name (Wilhelming: Wilhelmina)."""
    assert misread_english(word) is None


@pytest.mark.parametrize("text", ["Perpetua Thorn", "Wilhelming Mbatha", "Tesching Set", "Tesxhinq Set"])
def test_misread_names_and_short_misspellings_still_flag(text):
    assert flags(text)


# --- DOB without a colon ----------------------------------------------------------

@pytest.mark.parametrize("text", ["DOB 195 2.07 -06", "DOB 2 F eh 1999", "D.O.B. 14-0CT -2007"])
def test_what_follows_dob_is_a_date_however_misread(text):
    assert flags(text, "date")


@pytest.mark.parametrize("text", ["DOB", "DOBSON 12", "Adobe 2020 scan"])
def test_dob_needs_a_digit_after_it(text):
    assert not flags(text, "date")
