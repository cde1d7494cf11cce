"""The DICOM stain vocabulary (detect/lexicon/dicom_stains.txt) and the name test.

The list is generated from pydicom's copy of the DICOM standard (CID 8112
Specimen Stain and SNOMED CT stain concepts) by scripts/make_stain_lexicon.py,
never edited by hand: the first test regenerates it and fails when they
differ. Its words excuse their half of a capitalised pair only after the name
lists had their say, so a stain word that is also a person's name (Wright,
Jenner, Leishman, Evans) keeps a pair a name candidate.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wsideid.detect import name_lexicon
from wsideid.detect.name_lexicon import WordKind, word_kind
from wsideid.detect.phi_text import classify_text

ROOT = Path(__file__).resolve().parents[1]


def named(text: str) -> bool:
    return any(f.category == "name" for f in classify_text(text))


def test_shipped_list_is_what_pydicom_gives():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_stain_lexicon.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_list_holds_stain_words_and_no_dye_codes():
    words = name_lexicon.dicom_stain_words()
    assert {"CHRYSOIDINE", "MELDOLA", "LACMOID", "WAYSON", "NEELSEN", "ROMANOWSKY"} <= words
    assert not {"FCF", "GBC", "MRS", "III"} & words  # grade codes written in capitals: no words
    assert len(words) > 150


@pytest.mark.parametrize("text", ["Chrysoidine Solution", "Meldola Blue", "Lacmoid Solution", "WAYSON STAIN",
                                  "Coriphosphine Fluorescence"])
def test_dicom_stain_words_excuse_a_pair(text):
    """Each pair holds a word in no English or name list: a name candidate before."""
    assert not named(text)


@pytest.mark.parametrize("word", ["Wright", "Jenner", "Leishman", "Evans", "Victoria", "Albert", "Bauer"])
def test_stain_words_that_are_names_stay_names(word):
    assert word in {w.title() for w in name_lexicon.dicom_stain_words()}
    assert word_kind(word) is WordKind.NAME


@pytest.mark.parametrize("text", ["Meldola Jenner", "Albert Chrysoidine", "Wayson Kowalczyk", "Leishman Wright",
                                  "CHRYSOIDINE, KEISHA", "Evans Meldola Stain"])
def test_a_name_beside_a_stain_word_still_flags(text):
    assert named(text)


def test_a_stain_word_is_no_excuse_inside_a_name_field():
    assert named("Name: Meldola Wayson")


# --- whole DICOM stain names (lexicon/dicom_stain_phrases.txt) ----------------------

def test_phrases_hold_the_eponymous_stain_names_whole():
    phrases = set(name_lexicon.dicom_stain_phrases())
    assert {"JENNER GIEMSA STAIN", "LEISHMAN STAIN", "MALLORY BLEACH STAIN", "ZIEHL NEELSEN STAIN",
            "HEMATOXYLIN EOSIN"} <= phrases
    assert all(len(p.split()) >= 2 for p in phrases)


@pytest.mark.parametrize("text", ["Jenner-Giemsa", "Jenner Giemsa Stain", "Leishman Stain", "Leishman's stain",
                                  "Mallory Bleach", "Albert's Stain", "India Ink", "Diamond Black Stain",
                                  "Janus Green B Stain"])
def test_a_whole_dicom_stain_name_excuses_the_names_in_it(text):
    """Each holds a census name (Jenner, Leishman, Mallory, Albert, India, Diamond, Janus)."""
    assert not named(text)


@pytest.mark.parametrize("text", [
    "Ezekiel Leishman",          # a stain's eponym is no stain name without the stain word
    "Leishman Qorvath",          # nor beside a word the phrase does not hold
    "Diamond Black",             # every word a name and no Stain after it: a person may be called so
    "Janus Green B",
    "Bauer Chromic Acid",        # part of "Bauer's chromic acid leucofuchsin": not the whole name
    "Ezekiel Leishman Stain",    # a name before the stain name
    "Name: Mallory Bleach",      # a labelled field is a name whatever it says
    "MALLORY, BLEACH",           # LAST, FIRST
])
def test_a_dicom_stain_name_excuses_nothing_but_itself(text):
    assert named(text)
