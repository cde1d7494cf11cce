"""The verifier's needles: what counts, in which encodings, where the scan looks, and that
a leak refuses publication without the failure naming the value (issue 10, items 4, 5, 8)."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from wsideid.dates import DatePolicy, spellings
from wsideid.errors import VerificationFailed
from wsideid.model import DATE, KEEP, REMOVE, TEXT, Decision, Field, Inventory, Plan, ValueKind
from wsideid.needles import (MIN_USER, Needle, NeedleKind, Scanner, needles_for_plan, scan_bytes, value_kind)
from wsideid.pipeline import DeidOptions, deidentify, verify_output
from wsideid.streamheads import stream_headers

sys.path.insert(0, str(Path(__file__).parent))

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
TYPE_OF_PATIENT_ID = 0x00100022
OPTICAL_PATH_DESCRIPTION = 0x00480106
STUDY_DATE = 0x00080020
ROWS = 0x00280010


def _dicom(name: str, tag: int, value, action=REMOVE, new=None, path=None) -> Decision:
    return Decision(Field(path or f"inst[0]/{name}", f"dicom:{name}", value, ifd=0, tag=tag), action, new)


def _plan(*decisions: Decision) -> Plan:
    inv = Inventory("dicom", "x", [], [d.field for d in decisions])
    return Plan(inv, list(decisions), [], "test", "0" * 64, {})


def _texts(plan: Plan, identifiers=()) -> dict[str, NeedleKind]:
    return {n.text: n.kind for n in needles_for_plan(plan, identifiers).needles}


# --- which values are needles ------------------------------------------------------

def test_removed_value_kept_elsewhere_is_still_a_needle():
    """The 'kept elsewhere' exemption is gone: the kept field is the bug."""
    plan = _plan(_dicom("PatientName", PATIENT_NAME, "DOE^JANE"),
                 _dicom("OpticalPathDescription", OPTICAL_PATH_DESCRIPTION, "slide of DOE^JANE", KEEP,
                        "slide of DOE^JANE"))
    needles = _texts(plan)
    assert needles["DOE^JANE"] == NeedleKind.IDENTIFIER
    assert needles["JANE"] == NeedleKind.NAME_PART and needles["DOE"] == NeedleKind.NAME_PART
    hits = Scanner(needles_for_plan(plan).needles).scan([(0, b"\x00slide of DOE^JANE\x00")])
    assert {h.needle.text for h in hits} >= {"DOE^JANE", "JANE", "DOE"}


def test_coded_numeric_and_binary_values_are_not_needles():
    plan = _plan(_dicom("TypeOfPatientID", TYPE_OF_PATIENT_ID, "TEXT"),
                 _dicom("Rows", ROWS, "123456"),
                 _dicom("PixelPaddingValue", 0x00280120, "<OB 12 bytes>"),
                 _dicom("CodeMeaning", 0x00080104, "Tissue section", path="inst[0]/X[0]/CodeMeaning"),
                 _dicom("CodingSchemeDesignator", 0x00080102, "SCT", path="inst[0]/X[0]/CodingSchemeDesignator"))
    assert _texts(plan) == {}


def test_a_record_number_is_a_needle_whatever_typed_it_a_number():
    """A removed value of 7+ digits in a field an inventory types as a number (a DICOM IS, a
    vendor's numeric attribute) was no needle: only three vendors asked record_number first."""
    is_field = _dicom("ReferencedFrameNumber", 0x00081160, "4455667")
    typed = Decision(Field("xml/Slide@Count", "leica:Count", "4455667", kind=ValueKind.NUMBER), REMOVE)
    small = Decision(Field("xml/Slide@Width", "leica:Width", "44556", kind=ValueKind.NUMBER), REMOVE)
    assert value_kind(is_field) is ValueKind.TEXT and value_kind(typed) is ValueKind.TEXT
    assert value_kind(small) is ValueKind.NUMBER
    assert "4455667" in _texts(_plan(is_field, typed, small)) and "44556" not in _texts(_plan(small))


def test_code_meaning_under_a_private_scheme_is_text():
    plan = _plan(_dicom("CodeMeaning", 0x00080104, "Jane Roe biopsy", path="inst[0]/X[0]/CodeMeaning"),
                 _dicom("CodingSchemeDesignator", 0x00080102, "99LAB", path="inst[0]/X[0]/CodingSchemeDesignator"))
    assert _texts(plan)["Jane Roe biopsy"] == NeedleKind.VALUE


def test_kind_from_the_vr_when_the_inventory_left_the_default():
    kinds = {kw: value_kind(_dicom(kw, tag, v)) for kw, tag, v in [
        ("TypeOfPatientID", TYPE_OF_PATIENT_ID, "TEXT"), ("Rows", ROWS, "512"),
        ("PatientName", PATIENT_NAME, "A^B"), ("StudyDate", STUDY_DATE, "20191231"),
        ("SOPClassUID", 0x00080016, "1.2.840.10008.5.1.4.1.1.77.1.6"),
        ("StudyInstanceUID", 0x0020000D, "1.2.826.0.1.3680043.99.1")]}
    assert kinds == {"TypeOfPatientID": ValueKind.CODE, "Rows": ValueKind.NUMBER,
                     "PatientName": ValueKind.IDENTIFIER, "StudyDate": ValueKind.DATE,
                     "SOPClassUID": ValueKind.CODE, "StudyInstanceUID": ValueKind.IDENTIFIER}
    explicit = _dicom("PatientID", PATIENT_ID, "12")
    explicit.field.kind = ValueKind.NUMBER
    assert value_kind(explicit) == ValueKind.NUMBER  # an inventory's kind wins


def test_default_kind_numbers_are_not_needles_but_record_numbers_are():
    f = lambda v: Decision(Field(f"ifd[0]/ImageDescription/k{v}", "description:k", v, ifd=0, subkey="k"), REMOVE)
    plan = _plan(f("32914"), f("0.4990"), f("4455667"), f("0.4990\0DOE^JANE"), f("C9600-12\rPatientName=ROE"),
                 f("<1234 bytes>"), f("<12 values>"), f("<Name>Roe</Name>"))
    assert set(_texts(plan)) == {"4455667", "DOE^JANE", "C9600-12", "PatientName=ROE", "<Name>Roe</Name>"}


def test_parts_of_names_and_identifiers():
    plan = _plan(_dicom("PatientName", PATIENT_NAME, "Müller-Lüdenscheidt^Hans Peter=ミュラー"),
                 _dicom("PatientID", PATIENT_ID, "MRN-4455667/S19"),
                 _dicom("ReferringPhysicianName", 0x00080090, "Test^Physician"),
                 _dicom("StudyInstanceUID", 0x0020000D, "1.2.826.0.1.3680043.99.123456"))
    n = _texts(plan)
    assert {"Müller-Lüdenscheidt", "Hans", "Peter", "ミュラー"} <= set(n)
    assert n["Hans"] == NeedleKind.NAME_PART
    assert n["4455667"] == NeedleKind.ID_PART and "MRN" not in n and "S19" not in n
    assert "Test^Physician" in n and "Test" not in n and "Physician" not in n  # placeholder parts
    assert "1.2.826.0.1.3680043.99.123456" in n and "3680043" not in n  # a UID is searched whole


def test_user_identifiers_are_needles_and_short_ones_are_recorded():
    plan = _plan(_dicom("PatientID", PATIENT_ID, "AA01"))
    ns = needles_for_plan(plan, ["S19-4455 Kowalski", "AB"])
    kinds = {n.text: n.kind for n in ns.needles}
    assert kinds["S19-4455 Kowalski"] == NeedleKind.USER_IDENTIFIER and kinds["Kowalski"] == NeedleKind.USER_IDENTIFIER
    assert ns.skipped == [f"user identifier #2 has fewer than {MIN_USER} characters: not searched"]
    scanner = Scanner(ns.needles)
    assert scanner.scan([(0, b"Kowalskian method")]) == []  # a part stands apart from other letters
    assert scanner.scan([(0, "(KOWALSKI)".encode("utf-16-be"))])
    assert "AB" not in " ".join(ns.skipped)


def test_dates_in_removed_values_in_every_spelling_except_what_the_policy_wrote():
    plan = _plan(_dicom("StudyDate", STUDY_DATE, "20191231", DATE, "20191224"),
                 _dicom("ContentDate", 0x00080023, "20191224", DATE, "20191217"),
                 Decision(Field("ifd[0]/ImageDescription/Note", "description:Note", "scanned 2019-12-31 by Jo",
                                ifd=0, subkey="Note"), TEXT, "scanned 2019-12-24 by Jo"))
    n = _texts(plan)
    assert set(spellings(dt.date(2019, 12, 31))) <= set(n)
    assert "24.12.2019" not in n  # 2019-12-24 is also what the shift wrote for 2019-12-31
    assert n["31. dezember 2019"] == NeedleKind.DATE and n["scanned 2019-12-31 by Jo"] == NeedleKind.VALUE


# --- encodings and case ------------------------------------------------------------

@pytest.mark.parametrize("needle,stored,encoding", [
    ("Müller", "MÜLLER", "utf-16-be"), ("Müller", "MÜLLER", "utf-16-le"), ("Müller", "müller", "utf-8"),
    ("Müller", "MÜLLER", "latin-1"), ("MÜLLER", "müller", "utf-16-be"), ("Łukasz", "ŁUKASZ", "utf-8"),
    ("Łukasz", "łukasz", "utf-16-le"), ("Łukasz", "ŁUKASZ", "utf-16-be"), ("Straße", "STRASSE", "utf-8"),
    ("Ярослав", "ЯРОСЛАВ", "utf-16-le"), ("José", "JOSE\u0301", "utf-8"), ("doe^jane", "DOE^JANE", "utf-16-be"),
])
def test_case_folded_in_every_encoding(needle, stored, encoding):
    data = b"\x01\x02 header " + stored.encode(encoding) + b" trailer"
    hits = scan_bytes(data, [Needle(needle, NeedleKind.VALUE, "f")])
    assert [h.encoding for h in hits] == [encoding] or (encoding == "latin-1" and hits)
    assert hits[0].offset == data.index(stored.encode(encoding)[:1], 10)


def test_name_parts_stand_apart_from_words_and_dates_from_digits():
    ns = [Needle("Ann", NeedleKind.NAME_PART, "n"), Needle("31.12.2019", NeedleKind.DATE, "d")]
    assert scan_bytes(b"Annotation 131.12.20195", ns) == []
    assert {h.needle.text for h in scan_bytes(b"by ANN, on 31.12.2019.", ns)} == {"Ann", "31.12.2019"}
    assert {h.needle.text for h in scan_bytes("by ANN".encode("utf-16-le"), ns)} == {"Ann"}


@pytest.mark.parametrize("kind", [NeedleKind.ID_PART, NeedleKind.IDENTIFIER, NeedleKind.USER_IDENTIFIER])
def test_a_number_is_found_as_a_number_not_inside_a_minted_uid(kind):
    """The accession "S24-12345"'s part "12345" stood by chance in the output's random
    38-digit UIDs and refused about one clean DICOM run in fifty."""
    ns = [Needle("12345", kind, "inst[0]/AccessionNumber")]
    uid = b"2.25.981234507712345980012345000111222333"  # the part inside longer digit runs only
    assert scan_bytes(b"\x02\x00\x03\x00UI(\x00" + uid + b"\x00", ns) == []
    assert scan_bytes(uid.decode().encode("utf-16-le"), ns) == []
    for stored in (b"S24-12345", b"MRN:12345;", b"case 0012345 ", b"1.2.3.12345.4", b"12345"):
        assert [h.offset for h in scan_bytes(b"ab" + stored, ns)] == [2 + stored.index(b"12345")], stored
    assert scan_bytes("id 00012345".encode("utf-16-be"), ns)[0].encoding == "utf-16-be"


def test_a_zero_padded_number_is_found_without_its_zeros():
    ns = [Needle("0012345", NeedleKind.ID_PART, "p"), Needle("00123", NeedleKind.ID_PART, "q")]
    assert {h.needle.text for h in scan_bytes(b"x 12345 y", ns)} == {"0012345"}
    assert {h.needle.text for h in scan_bytes(b"x 000123 y 9912345", ns)} == {"00123"}  # short: as written


def test_failure_names_kind_and_source_never_the_value():
    hit = scan_bytes(b"xx DOE^JANE", [Needle("DOE^JANE", NeedleKind.IDENTIFIER, "inst[0]/PatientName")])[0]
    text = hit.describe()
    assert "removed identifier" in text and "inst[0]/PatientName" in text and "byte 3" in text
    assert "DOE" not in text and "JANE" not in text


def test_unknown_key_names_are_not_shown():
    d = Decision(Field("ifd[0]/ImageDescription/Jane Doe", "description:Jane Doe", "Smith Clinic", ifd=0,
                       subkey="Jane Doe"), REMOVE, unknown=True)
    src = needles_for_plan(_plan(d)).needles[0].source
    assert src == "ifd[0]/ImageDescription/<unknown key>"


def test_scan_finds_one_needle_among_thousands_in_a_large_buffer():
    ns = [Needle(s, NeedleKind.DATE, "d") for y in range(2010, 2016) for s in spellings(dt.date(y, 6, 15))]
    ns.append(Needle("Kowalski", NeedleKind.VALUE, "v"))
    scanner = Scanner(ns)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, 32 << 20, dtype=np.uint8).tobytes()
    planted = big[:-100] + "KOWALSKI".encode("utf-16-be") + big[-84:]
    hits = scanner.scan([(1000, planted)])  # about 0.5 s for 32 MB on one core (speed is not asserted)
    assert [(h.needle.text, h.offset) for h in hits] == [("Kowalski", 1000 + len(big) - 100)]


# --- tile and frame headers -------------------------------------------------------

def _jpeg_with_comment(comment: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, "JPEG", comment=comment)
    return buf.getvalue()


def test_tile_headers_are_read_up_to_sos(tmp_path):
    tiles = [_jpeg_with_comment(b"Kowalski Lukasz"), _jpeg_with_comment(b"x" * 3000), b"raw pixel bytes KOWALSKI"]
    path = tmp_path / "tiles.bin"
    path.write_bytes(b"".join(tiles))
    offs = np.cumsum([0] + [len(t) for t in tiles[:-1]])
    heads = list(stream_headers(str(path), offs, np.array([len(t) for t in tiles])))
    assert [o for o, _ in heads] == offs[:2].tolist()  # raw data has no header
    for (_, h), tile in zip(heads, tiles):
        sos = tile.index(b"\xff\xda")
        assert h == tile[:sos + 2 + int.from_bytes(tile[sos + 2:sos + 4], "big")]
    assert b"Kowalski" in heads[0][1] and len(heads[1][1]) > 3000  # read again whole when long


def test_j2k_header_is_read_up_to_sod(tmp_path):
    buf = io.BytesIO()
    try:
        Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, "JPEG2000", comment=b"Kowalski")
    except (OSError, TypeError, KeyError):
        pytest.skip("Pillow cannot write JPEG 2000 comments here")
    data = buf.getvalue()
    soc = data.index(b"\xff\x4f\xff\x51")
    path = tmp_path / "j2k.bin"
    path.write_bytes(data[soc:])
    (_, head), = stream_headers(str(path), np.array([0]), np.array([len(data) - soc]))
    assert b"Kowalski" in head and head.endswith(b"\xff\x93")


# --- the pipeline refuses --------------------------------------------------------

def _tamper_append(src: Path, dst: Path, payload: bytes) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "ab") as fh:
        fh.write(payload)


def test_removed_value_appended_to_a_tiff_output_is_refused(synth_slides, tmp_path):
    src = synth_slides["aperio"]
    (tmp_path / "out").mkdir()
    res = deidentify(src, tmp_path / "out", DeidOptions(new_id="R-1", detect="off"))
    assert res.status == "published"
    assert next(c for c in res.report.checks if c.name == "residual-needles").ok
    value = next(n for n in needles_for_plan(res.plan).needles if n.kind in (NeedleKind.VALUE, NeedleKind.IDENTIFIER)
                 and len(n.text) >= 6)
    bad = tmp_path / "tampered.svs"
    _tamper_append(Path(res.output), bad, value.text.upper().encode("utf-16-be"))
    rep = verify_output(src, bad, DeidOptions(new_id="R-1", detect="off"))
    check = next(c for c in rep.checks if c.name == "residual-needles")
    assert not check.ok and value.kind.value in check.detail and value.source in check.detail
    assert value.text not in check.detail and value.text.upper() not in check.detail


def test_user_identifier_in_kept_metadata_refuses_publication(synth_slides, tmp_path):
    src = synth_slides["aperio"]
    (tmp_path / "a").mkdir()
    res = deidentify(src, tmp_path / "a", DeidOptions(new_id="R-1", detect="off"))
    import tifffile
    with tifffile.TiffFile(res.output) as tf:
        kept = tf.pages[0].description
    word = max(re.findall(r"[A-Za-z]{5,}", kept), key=len)  # a word the profile keeps
    from wsideid.cli import main
    assert main(["verify", str(src), res.output, "--new-id", "R-1"]) == 0
    assert main(["verify", str(src), res.output, "--new-id", "R-1", "--identifier", word.upper()]) == 3
    (tmp_path / "b").mkdir()
    with pytest.raises(VerificationFailed) as err:
        deidentify(src, tmp_path / "b", DeidOptions(new_id="R-1", detect="off", identifiers=[word.lower()]))
    assert "user-given identifier from user identifier #1" in str(err.value)
    assert "residual-needles" in err.value.checks
    assert word.lower() not in str(err.value).lower()
    assert not os.listdir(tmp_path / "b") or all(n.startswith(".") or n.endswith(".json") for n in os.listdir(tmp_path / "b"))


@pytest.fixture(scope="module")
def dicom_src(tmp_path_factory) -> Path:
    from test_dicom_fixtures import dicom_file
    ds = pydicom.dcmread(dicom_file("highdicom_sm_image"))
    ds.PatientName = "Kowalski^Łukasz"
    ds.SpecificCharacterSet = "ISO_IR 192"
    item = pydicom.Dataset()
    item.PatientID = "OTHER-4455667"
    item.TypeOfPatientID = "TEXT"  # a CS value that also stands in kept content items (ValueType TEXT)
    ds.OtherPatientIDsSequence = [item]
    out = tmp_path_factory.mktemp("dicom") / "slide.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def test_coded_text_value_does_not_refuse_a_clean_dicom_slide(dicom_src, tmp_path):
    from test_dicom_fixtures import run
    res = run(dicom_src, tmp_path / "out", detect="off")
    assert res.status == "published"
    check = next(c for c in res.report.checks if c.name == "residual-needles")
    assert check.ok, check.detail
    texts = {n.text for n in needles_for_plan(res.plan).needles}
    assert "TEXT" not in texts and "OTHER-4455667" in texts and "Łukasz" in texts
    assert b"TEXT" in Path(res.output).read_bytes()  # the CS value stands in the output and is fine


def test_name_part_in_a_kept_dicom_field_refuses(dicom_src, tmp_path):
    from test_dicom_fixtures import options, run
    res = run(dicom_src, tmp_path / "out", detect="off")
    out = Path(res.output)
    data = out.read_bytes()
    payload = " ŁUKASZ ".encode("utf-8")
    # a kept text value, whatever the profile keeps, overwritten in place with the same length
    kept = next(v for e in pydicom.dcmread(out).iterall() if e.VR in ("LO", "SH", "LT", "ST", "UT", "UC")
                and isinstance(e.value, str) and len(v := e.value.encode()) >= len(payload) and data.count(v) == 1)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(data.replace(kept, payload.ljust(len(kept)), 1))
    rep = verify_output(dicom_src, bad, options(detect="off"))
    check = next(c for c in rep.checks if c.name == "residual-needles")
    assert not check.ok and "part of a removed name from inst[0]/PatientName" in check.detail
    assert "ukasz" not in check.detail.lower()


def test_unshifted_copy_beside_a_shifted_date_is_caught():
    plan = _plan(_dicom("StudyDate", STUDY_DATE, "20191231", DATE, "20191224"))
    scanner = Scanner(needles_for_plan(plan).needles)
    assert scanner.scan([(0, b"StudyDate 20191224 shifted")]) == []
    for copy in ["31Dec2019", "12.31.2019", "2019_12_31", "31. DEZEMBER 2019", "2019年12月31日", "31122019"]:
        for enc in ("utf-8", "utf-16-le"):
            data = f"StudyDate 20191224, scanned {copy}".encode(enc)
            hits = scanner.scan([(0, data)])
            assert [h.needle.kind for h in hits] == [NeedleKind.DATE], (copy, enc)


def test_name_in_a_dicom_frame_header_refuses(tmp_path):
    """Frame headers are scanned: a COM segment before SOS in one frame is found."""
    from pydicom.encaps import encapsulate, generate_frames
    from test_dicom_fixtures import dicom_file, options, run
    src = tmp_path / "src.dcm"
    ds = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    ds.PatientName = "Kowalski^Jan"
    ds.save_as(src, enforce_file_format=True)
    res = run(src, tmp_path / "out", detect="off")
    assert next(c for c in res.report.checks if c.name == "residual-needles").ok
    out = pydicom.dcmread(res.output)
    frames = list(generate_frames(out.PixelData, number_of_frames=int(out.NumberOfFrames)))
    note = b"scanned for KOWALSKI"
    k = len(frames) // 2
    frames[k] = frames[k][:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + frames[k][2:]
    out.PixelData = encapsulate(frames)
    bad = tmp_path / "bad.dcm"
    out.save_as(bad, enforce_file_format=True)
    rep = verify_output(src, bad, options(detect="off"))
    check = next(c for c in rep.checks if c.name == "residual-needles")
    assert not check.ok and "part of a removed name from inst[0]/PatientName" in check.detail


def test_tiff_tile_headers_are_part_of_the_scanned_bytes(synth_slides):
    """The synthetic SVS hides a COM segment in its first tiles: the segments the verifier
    scans hold it (before SOS), and never the tiles' entropy-coded data."""
    from wsideid.synth import MRN
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    from wsideid.tiff_family.verify import non_pixel_segments
    path = str(synth_slides["aperio"])
    tf = read_tiff(path)
    segs = list(non_pixel_segments(path, tf))
    data = image_data(tf.ifds[0], tf.byteorder)
    first = int(data.src_offsets[0])
    heads = [b for off, b in segs if off == first]
    assert heads and MRN.encode() in heads[0]
    sos = heads[0].index(b"\xff\xda")
    assert len(heads[0]) == sos + 2 + int.from_bytes(heads[0][sos + 2:sos + 4], "big")
    hits = scan_bytes(b"".join(b for _, b in segs), [Needle(MRN, NeedleKind.ID_PART, "x")])
    assert hits


def test_a_needle_across_two_pieces_of_one_range_is_found():
    """A large gap is read in pieces: a value that straddles two back-to-back pieces is found,
    and one that straddles two separate ranges is not (they are not adjacent in the file)."""
    from wsideid import needles as nd
    needle = Needle("Kowalski-Nowak", NeedleKind.VALUE, "v")
    data = b"x" * (nd.CHUNK + 5) + "KOWALSKI-NOWAK".encode("utf-16-le") + b"y" * 100
    cut = nd.CHUNK + 11
    hits = Scanner([needle]).scan([(0, data[:cut]), (cut, data[cut:])])
    assert [h.offset for h in hits] == [nd.CHUNK + 5]
    assert Scanner([needle]).scan([(0, data[:cut]), (cut + 1, data[cut:])]) == []
    small = b"ab KOWAL", b"SKI-NOWAK"
    assert Scanner([needle]).scan([(0, small[0]), (8, small[1])])


def test_repeated_tile_headers_are_scanned_once_unless_they_touch(tmp_path):
    """Identical headers are handed to the scanner once (a 2 GB slide shares one header), but a
    header that could continue the previous segment (a tile that is all header) is never
    skipped: the scanner joins touching segments, and a needle may span them."""
    from wsideid.streamheads import HeaderMemo, distinct_headers
    tile = _jpeg_with_comment(b"plain")
    sos = tile.index(b"\xff\xda")
    head = tile[:sos + 2 + int.from_bytes(tile[sos + 2:sos + 4], "big")]
    all_header = b"\xff\xd8\xff\xfe\x00\x08Kowa"  # no SOS: the whole tile is scanned
    tiles = [tile, tile, all_header, tile, tile, _jpeg_with_comment(b"Kowalski Lukasz")]
    path = tmp_path / "tiles.bin"
    path.write_bytes(b"".join(tiles))
    offs = np.cumsum([0] + [len(t) for t in tiles[:-1]])
    memo = HeaderMemo()
    got = list(distinct_headers(str(path), offs, np.array([len(t) for t in tiles]), memo))
    assert [o for o, _ in got] == [offs[0], offs[2], offs[3], offs[5]]  # offs[3] touches the all-header tile
    assert got[1][1] == all_header and got[2][1] == head and b"Kowalski" in got[3][1]
    assert memo.total == sum(len(h) for _, h in stream_headers(str(path), offs, np.array([len(t) for t in tiles])))
    # and the scan finds a needle spanning the all-header tile and the next header
    from wsideid.needles import Needle, NeedleKind, Scanner
    spanning = all_header[-4:].decode() + head[:2].decode("latin-1")
    hits = Scanner([Needle(spanning, NeedleKind.VALUE, "")]).scan(iter(got))
    assert hits, "a needle across touching segments must still be found"
