"""Two engines on one line (detect/agreement.py, scan.second_engine_findings), a stain's
head word as context (name_lexicon.is_stain_head), and PP-OCR reading whole lines
(scan.whole_lines).

No OCR runs here: the readings are given, as the label bench's --replay gives
them, so every rule is exercised exactly. Each excuse has its counterpart where a
name stays flagged: a known name is never excused by the other engine, and a
reading whose matching words are in no list proves nothing. The phrases are
this file's own, not the label bench's held-out vocabulary.
"""
from __future__ import annotations

import pytest

from wsideid.detect import name_lexicon
from wsideid.detect.agreement import explained, unlisted_words
from wsideid.detect.findings import Finding
from wsideid.detect.lines import Reading
from wsideid.detect.phi_text import classify_text
from wsideid.detect.scan import second_engine_findings, whole_lines
from wsideid.detect.textregions import TextRegion

needs_english = pytest.mark.skipif(not name_lexicon.english_text(),
                                   reason="no English word list (apt wamerican, scripts/setup.sh)")

LINE = (10, 10, 200, 30)


def names(text: str) -> list:
    return [f for f in classify_text(text) if f.category == "name"]


def tess(text: str, box=LINE, conf: float = 0.9) -> Finding:
    return Finding("label", "text", text, box, conf, None, "tesseract", classify_text(text))


def scan(tesseract_text: str, ppocr_text: str, box=LINE) -> list[Finding]:
    """Findings of a label with one line, as tesseract and PP-OCR read it."""
    region = TextRegion(box, False, 0.9, 8)
    return second_engine_findings("label", [region], [[Reading(ppocr_text, 0.97, "ppocr")]],
                                  [tess(tesseract_text, box)], [])


def named(findings: list[Finding]) -> bool:
    return any(fl.category == "name" for f in findings for fl in f.flags)


# --- the other engine shows a misreading ------------------------------------------

@needs_english
@pytest.mark.parametrize("tesseract_text, ppocr_text", [
    ("Frozen Tissve", "Frozen Tissue"),            # tesseract misread one letter
    ("Routine Biopsy Requestd", "Routine Biopsy Requested"),
    ("Decalcification Notd", "Decalcification Noted"),
])
def test_a_tesseract_misreading_the_other_engine_read_right_is_no_name(tesseract_text, ppocr_text):
    assert names(tesseract_text)  # flagged on its own
    assert not named(scan(tesseract_text, ppocr_text))


@needs_english
@pytest.mark.parametrize("tesseract_text, ppocr_text", [
    ("Decalcified Specimen", "Decalcified Specim"),   # PP-OCR's crop cut short
    ("Routine Biopsy", "Routine Biopsi"),
])
def test_a_cut_short_ppocr_reading_adds_no_name(tesseract_text, ppocr_text):
    assert names(ppocr_text)
    found = scan(tesseract_text, ppocr_text)
    assert not named(found) and [f.reader for f in found] == ["tesseract"]


@pytest.mark.parametrize("tesseract_text, ppocr_text", [
    ("Gotdon Baker", "Gordon Baker"),      # a known name in the span: never excused
    ("Crystal Tissve", "Crystal Tissue"),  # Crystal is a given name
    ("Wilhelming Qorvath", "Wilhelmina Qorvath"),
])
def test_a_known_name_is_never_excused_by_the_other_engine(tesseract_text, ppocr_text):
    assert named(scan(tesseract_text, ppocr_text))


def test_a_reading_holding_the_letters_in_unlisted_words_proves_nothing():
    """THANDIWE WHIT LOCK read by PP-OCR as 'HANDIWE WH IT LOCK': no flag there only
    because its words are short, and 'handiwe' is in no list."""
    assert named(scan("OLUWASEUN QORVATH", "LUWASEUN QO RV ATH"))


@needs_english
def test_the_other_reading_must_flag_no_name_itself():
    assert named(scan("Frozen Tissve", "Frozen Tissue Ezekiel Qorvath"))


@needs_english
def test_a_labelled_field_or_last_first_is_never_excused():
    for text, other in (("Name: Frozen Tissve", "Name: Frozen Tissue"), ("TISSVE, FROZEN", "TISSUE, FROZEN")):
        assert named(scan(text, other)), text


@needs_english
def test_a_short_word_must_be_found_exactly():
    """Three letters or fewer: no edit allowed ('Xey' is not found in 'Key')."""
    flag = names("Routine Xey")[0]
    assert unlisted_words("Routine Xey", flag) == ["Xey"]
    assert not explained("Routine Xey", flag, ["Routine Key"])


def test_an_unsure_or_distant_reading_is_not_taken():
    region = TextRegion(LINE, False, 0.9, 8)
    unsure = second_engine_findings("label", [region], [[Reading("Frozen Tissue", 0.5, "ppocr")]],
                                    [tess("Frozen Tissve")], [])
    elsewhere = second_engine_findings("label", [TextRegion((10, 100, 200, 120), False, 0.9, 8)],
                                       [[Reading("Frozen Tissue", 0.97, "ppocr")]], [tess("Frozen Tissve")], [])
    assert named(unsure) and named(elsewhere)


# --- a stain's head word after a word in no list -----------------------------------

def test_stain_heads_come_from_the_dicom_list():
    heads = name_lexicon.dicom_stain_heads()
    assert {"TRICHROME", "EOSIN", "GIEMSA", "FUCHSIN", "HEMATOXYLIN"} <= heads
    assert not {"FCF", "LEISHMAN", "STAIN"} & heads  # dye codes and capitalised eponyms are no heads


@pytest.mark.parametrize("text", ["Qorvath Trichrome", "QORVATH EOSIN", "Qorvath Fuchsin"])
def test_a_word_in_no_list_before_a_stain_head_is_an_eponym(text):
    assert not names(text)


@pytest.mark.parametrize("text", ["Gordon Trichrome", "Qorvath Silver", "Qorvath Green", "Trichrome Qorvath",
                                  "Ezekiel Qorvath Trichrome", "Name: Qorvath Trichrome"])
def test_a_stain_head_never_excuses_a_name(text):
    """A listed name before the head; a head that is a census name (Silver, Green); the
    word after it; a pair before it; a labelled field."""
    assert names(text)


# --- PP-OCR reads the whole line -----------------------------------------------------

def test_a_region_is_stretched_to_the_tesseract_line_it_lies_on():
    cut = TextRegion((60, 12, 150, 28), False, 0.9, 6)
    (got,) = whole_lines([cut], [tess("Frozen Tissue Section", (8, 10, 190, 30))])
    assert got.box == (8, 12, 190, 28) and got.score == cut.score


def test_a_vertical_region_is_stretched_along_its_own_axis():
    cut = TextRegion((12, 60, 28, 150), True, 0.9, 6)
    (got,) = whole_lines([cut], [tess("Frozen Tissue Section", (10, 8, 30, 190))])
    assert got.box == (12, 8, 28, 190)


def test_a_region_is_not_moved_by_a_few_pixels():
    """A pixel more hides no letter but changes what PP-OCR reads: an end moves by
    half the line's thickness (8 px here) or not at all."""
    cut = TextRegion((60, 12, 150, 28), False, 0.9, 6)
    (got,) = whole_lines([cut], [tess("Frozen Tissue Section", (55, 10, 190, 30))])
    assert got.box == (60, 12, 190, 28)


@pytest.mark.parametrize("box, conf", [
    ((8, 40, 190, 60), 0.9),    # another line (no common height)
    ((8, 0, 190, 80), 0.9),     # a box four times as thick: two lines in one
    ((160, 10, 300, 30), 0.9),  # the same row, past the region's end: another item
    ((8, 10, 190, 30), 0.3),    # an unsure reading
    ((12, 0, 28, 190), 0.9),    # a line running the other way
])
def test_a_region_is_left_alone_by_other_lines(box, conf):
    cut = TextRegion((60, 12, 150, 28), False, 0.9, 6)
    assert whole_lines([cut], [tess("Frozen Tissue Section", box, conf)]) == [cut]
