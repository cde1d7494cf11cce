"""PHI text rules: what must be flagged, and label words that must not be."""
import pytest

from wsideid.detect.phi_text import allowed_edits, best_substring_match, classify_text


def cats(text, ids=()):
    return {f.category for f in classify_text(text, ids)}


@pytest.mark.parametrize(
    "text",
    ["2024-03-05", "03/05/24", "5.3.2024", "05-MAR-2024", "March 5 2024", "Mar 5, 2024", "20240305",
     "DOB 12/31/1980", "5 Mar 2024", "05MAR2024", "2O24-O3-O5"],
)
def test_dates_are_flagged(text):
    assert "date" in cats(text)


@pytest.mark.parametrize("text", ["2024-13-45", "31/31/2024", "CAM5.2", "1.5"])
def test_impossible_dates_are_not(text):
    assert "date" not in cats(text)


@pytest.mark.parametrize("text", ["S24-12345", "SP-24-1234", "CBF-1234", "HS12-15115", "S24-12345 A1", "SP24 12345"])
def test_accessions(text):
    assert "accession" in cats(text)


@pytest.mark.parametrize("text", ["MRN 1234567", "0012345678", "MRN: 55512"])
def test_mrn(text):
    assert "mrn" in cats(text)


@pytest.mark.parametrize("text", ["Name: Lopez", "SMITH, JOHN", "Pt: Ann Example", "Mary Johnson", "DOE^JANE" ])
def test_names(text):
    assert "name" in cats(text)


@pytest.mark.parametrize(
    "text",
    ["H&E", "CD4", "CD138", "Ki-67", "S100", "HER2", "Research Use Only", "CD4-fluo/CRTH2-Cy", "Liver", "PAS",
     "Block A1", "Level 3", "TSA TSA2_var *H1(10)", "x40", "Slide 2 of 3", "Jones silver", "Masson trichrome",
     "Congo Red", "Grocott", "Lung", "Kidney", "TTF-1", "PD-L1 22C3", "Giemsa"],
)
def test_label_words_are_not_phi(text):
    assert classify_text(text) == []


def test_spans_index_the_original_text():
    text = "Pt: Straße 2024-03-05"
    flags = classify_text(text)
    dates = [f for f in flags if f.category == "date"]
    assert dates and dates[0].matched(text) == "2024-03-05"


def test_fuzzy_identifier_tolerates_ocr_confusions():
    assert "identifier" in cats("HSl2-l5ll5", ["HS12-15115"])
    assert "identifier" in cats("H512 15115", ["HS12-15115"])
    assert "identifier" in cats("xx HS12-1S115 yy", ["HS12-15115"])
    assert "identifier" not in cats("HS13-27730", ["HS12-15115"])
    assert "identifier" in cats("CMu-|", ["CMU-1"])
    assert "identifier" not in cats("CMV-7", ["CMU-1"])


def test_identifier_reason_holds_no_value():
    flags = classify_text("HS12-15115", ["HS12-15115"])
    assert all("15115" not in f.reason for f in flags)


def test_substring_match():
    assert best_substring_match("ABC", "xxABCxx") == (0, 2, 5)
    edits, a, b = best_substring_match("ABCDEF", "zzABXDEFzz")
    assert edits == 1 and (a, b) == (2, 8)
    assert allowed_edits(4) == 0 and allowed_edits(10) == 1 and allowed_edits(12) == 2


@pytest.mark.parametrize(
    "text",
    ["Cresyl Violet", "Golgi Cox", "Golgi-Cox", "Picro Sirius", "Feulgen Reaction", "Brown Hopps", "Nissl Stain",
     "Mayer's Hematoxylin", "Victoria Blue", "May Grunwald Giemsa", "Methyl Green", "Thioflavin S"],
)
def test_stain_names_are_not_names(text):
    """Stains named after people or chemicals are label words, not a patient's name."""
    assert "name" not in cats(text)


@pytest.mark.parametrize(
    "text",
    ["COX, JOHN", "Pt: COX", "Violet Okonkwo", "Scarlet Abernathy", "Ezekiel Dragomir", "Name: Hopps Ada",
     "Golgi Cox JOHN SMITH"],
)
def test_names_beside_or_like_stain_words_are_still_names(text):
    """A lone eponym surname, colour given names, unlisted names: still flagged."""
    assert "name" in cats(text)


def test_stain_phrase_keeps_other_phi():
    """Only name flags are dropped inside a stain phrase: a date on the same line stays."""
    assert cats("Golgi Cox 2024-03-05") == {"date"}


def test_label_words_are_nobodys_name():
    """A label word suppresses the name lists for that word: it must name no one in them."""
    from wsideid.detect.label_vocab import LABEL_WORDS, STAIN_PHRASES
    from wsideid.detect.names import GIVEN_NAMES, SURNAMES
    assert not LABEL_WORDS & (GIVEN_NAMES | SURNAMES)
    assert all(p == " ".join(p.split()) and p.isupper() for p in STAIN_PHRASES)


@pytest.mark.parametrize("text", ["44945 198", "7 7649 635", "MRN 77649 635"])
def test_digit_runs_split_by_ocr_are_mrns(text):
    """Handwritten digits read with gaps: one MRN, not short harmless numbers."""
    assert "mrn" in cats(text)


@pytest.mark.parametrize("text", ["Slide 1 of 2", "Level 3 4 5", "CD4 CD8 10 20", "Block A1 12 34", "H&E 12 345"])
def test_short_spaced_numbers_are_not_mrns(text):
    assert "mrn" not in cats(text)


@pytest.mark.parametrize("text", ["DOB 2025 -10.18", "2025 - 10 - 18", "18 .10. 2025"])
def test_dates_with_ocr_spaces_at_separators(text):
    assert "date" in cats(text)


def test_known_name_span_covers_garbled_neighbour():
    """'Michae' Patel': the flag covers the whole name, not only the listed half."""
    text = "Michae\u2019 Patel"
    (flag,) = [f for f in classify_text(text) if f.category == "name"]
    assert text[flag.span[0]:flag.span[1]] == text
    (flag,) = [f for f in classify_text("SMITH Giemsa") if f.category == "name"]
    assert flag.span == (0, 5)  # a label word is no part of the name


@pytest.mark.parametrize("text", ["Crystal Gill", "GARVEY, CRYSTAL", "Mallory Weigert", "MAYER, KEISHA",
                                  "Keisha Mayer", "Patient: Rose Bengal", "NAME: VICTORIA BLUE"])
def test_stain_eponyms_and_labelled_fields_still_flag_names(text):
    """Words that name stains but also people never excuse a name, and a labelled name field is
    flagged even when its value spells a stain."""
    assert "name" in {f.category for f in classify_text(text)}, text
