"""Planted PHI, fifth round (attacker audit): text that survived in a place the value policy treats
as a number or as binary. Each place published the needle (or a date) with the verifier saying
clean before its fix; judged by the matrix's rule (refused or flagged with nothing published, or
published with no spelling of the needle anywhere in OUTDIR), and where the needle is a number
no byte search finds, by reading the published value back.

Places:
- TIFF tags a profile keeps as numbers (SHORT, LONG, RATIONAL, DOUBLE arrays, NDPI private tags)
  whose stored bytes spell the name, the accession or a date: as bytes, as one character per
  SHORT or LONG (UTF-16/32), in the file's byte order or the other one;
- a tag kept as a number but stored as BYTE, ASCII or UNDEFINED ("4477139" as ASCII parses as
  a rational);
- a date stored as a number: 19870317 in an Aperio key, an NDPI tag, a DICOM IS/DS, a vendor XML
  number;
- ICC profiles: numbers of a kept tag that spell text, the dateTime tag, a signature tag holding
  four letters of a name;
- DICOM binary values (OB/OW/UN, US/UL/FL/FD...) of kept attributes whose bytes spell text;
- a MIRAX index record outside the slide's tile grid (copied, never shown by a viewer).
Guards: real slides' numbers (tile offsets, ICC curves, McuStarts) are not flagged.
"""

from __future__ import annotations

import contextlib
import io
import struct
from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from published_outputs import published
from test_planted_matrix import input_holds_needle, judge
from wsideid import cli
from wsideid.dates import DatePolicy
from wsideid.model import Field, ValueKind
from wsideid.tiff.writer import OutEntry
from wsideid.valuepolicy import check, parse_spec

SECRET = "planted-round5-secret-0123456789abcdef"
NEEDLE = pm.NEEDLE.encode()
TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def _deid(src: Path, outdir: Path, monkeypatch, *extra: str) -> tuple[int, str]:
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "-o", str(outdir), "--detect", "off", *extra])
    return rc, err.getvalue()


def _run(place: pm.Place, tmp_path: Path, monkeypatch, src: Path | None = None) -> tuple[str, Path]:
    src = src or place.build(tmp_path)
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch)
    return judge(place, src, outdir, rc, err), outdir


def _out_tags(outdir: Path) -> list[dict]:
    """The entries of every IFD of the one published TIFF."""
    from wsideid.tiff.container import read_tiff
    files = [outdir / p for p in published(outdir)]
    assert len(files) == 1, files
    return [ifd.entries for ifd in read_tiff(str(files[0])).all_ifds()]


def _padded(text: bytes, unit: int) -> bytes:
    return text + b" " * (-len(text) % unit)


def _entry(tag: int, typ: int, raw: bytes) -> OutEntry:
    size = {3: 2, 4: 4, 5: 8, 11: 4, 12: 8}[typ]
    return OutEntry(tag, typ, len(raw) // size, raw)


# ------------------------------------------------------------------ text spelled in numbers
def test_words_in_numbers_finds_text_in_either_byte_order():
    from wsideid.textbytes import words_in_numbers
    name = b"Zephyrina"
    assert "Zephyrina" in words_in_numbers(name)
    shorts = [ord(c) for c in "Zephyrina"]
    assert "Zephyrina" in words_in_numbers(struct.pack(f"<{len(shorts)}H", *shorts), "<u2")   # UTF-16 LE
    assert "Zephyrina" in words_in_numbers(struct.pack(f">{len(shorts)}H", *shorts), ">u2")   # UTF-16 BE
    assert "Zephyrina" in words_in_numbers(struct.pack(f"<{len(shorts)}I", *shorts), "<u4")   # UTF-32
    # values whose little-endian bytes spell it, stored big-endian: pair-swapped in the file
    swapped = struct.pack(">5H", *struct.unpack("<5H", _padded(name, 2)))
    assert name not in swapped and "Zephyrina" in " ".join(words_in_numbers(swapped, ">u2"))
    assert "4477139" in words_in_numbers(b"\x00\x004477139\x00")
    assert words_in_numbers(b"SS7788  ") == ["SS7788"] and words_in_numbers(b"\0ZX24-77139\0") == ["ZX24-77139"]
    assert words_in_numbers(b"1987-03-17") == ["1987-03-17"]


def test_measured_numbers_rarely_spell_a_word():
    """Random 32-bit integers and measured DOUBLEs (random mantissas) spell a word by chance; the
    casing and vowel rule for 4-5 letter words keeps that rare: measured here, 16-value arrays."""
    import numpy as np

    from wsideid.textbytes import words_in_numbers
    rng = np.random.default_rng(1)
    doubles = sum(bool(words_in_numbers((rng.random(16) * 100).astype("<f8").tobytes(), "<f8")) for _ in range(2000))
    longs = sum(bool(words_in_numbers(rng.integers(0, 2 ** 32, 16, dtype=np.uint64).astype("<u4").tobytes(), "<u4"))
                for _ in range(2000))
    assert doubles / 2000 < 0.05 and longs / 2000 < 0.05, (doubles, longs)  # measured: 3.7 %, 3.3 %


def test_words_in_numbers_leaves_real_numbers_alone():
    """Tile offsets and byte counts of a slide under 1 GB, a tone curve, a colour map."""
    import numpy as np

    from wsideid.textbytes import words_in_numbers
    offsets = np.cumsum(np.random.default_rng(5).integers(2000, 60000, 5000)).astype("<u4").tobytes()
    assert words_in_numbers(offsets, "<u4") == []
    curve = (np.linspace(0, 1, 1024) ** 2.2 * 65535).astype(">u2").tobytes()
    assert words_in_numbers(curve, ">u2") == []
    cmap = (np.arange(768) % 256 * 257).astype("<u2").tobytes()
    assert words_in_numbers(cmap, "<u2") == []
    rationals = struct.pack("<6I", 0, 1, 255, 1, 128, 1)
    assert words_in_numbers(rationals, "<u4") == []


@pytest.mark.parametrize("n", [26, 256, 1024, 4096])
@pytest.mark.parametrize("order", ["<", ">"])
def test_real_tone_curves_and_colour_maps_spell_nothing(n, order):
    """Gamma curves 0.3-3.0 (ICC curv, TIFF TransferFunction), three-channel transfer functions and
    a colour map of three ramps: their high bytes interleave with letters by chance ("JzKwLtMr"),
    which words alone would take for text."""
    import numpy as np

    from wsideid.textbytes import words_in_numbers
    for g in np.linspace(0.3, 3.0, 55):
        curve = (np.linspace(0, 1, n) ** g * 65535).round().astype(order + "u2")
        if n >= 32:
            assert words_in_numbers(curve.tobytes(), order + "u2") == [], (n, g)
            three = np.concatenate([curve, curve[::-1], curve]).astype(order + "u2")
            assert words_in_numbers(three.tobytes(), order + "u2") == [], (n, g)
        elif n == 26:  # short curves are read as words: a known gap the other way (flagged, removed)
            words_in_numbers(curve.tobytes(), order + "u2")


def _numbers_place(fmt: str, tag: int, typ: int, raw: bytes, ifds: str = "all") -> pm.Place:
    return pm.Place(f"{fmt}-{tag}-type{typ}-spells-text",
                    pm.tiff_with(fmt, ifds, {tag: lambda src, i: _entry(tag, typ, raw)}))


UTF16_SHORTS = struct.pack(f"<{len(NEEDLE)}H", *NEEDLE)
SPELLING = [  # (base, tag, TIFF type, stored bytes)
    ("tiff", 301, 3, _padded(NEEDLE, 2) * 8),                  # TransferFunction SHORT
    ("tiff", 301, 3, UTF16_SHORTS),                            # one character per SHORT
    ("tiff", 532, 5, _padded(NEEDLE, 8)[:48].ljust(48, b" ")),  # ReferenceBlackWhite RATIONAL
    ("tiff", 318, 5, _padded(b"Quixote ", 8) * 2),             # WhitePoint RATIONAL x2
    ("tiff-be", 301, 3, _padded(NEEDLE, 2) * 8),               # big-endian file
    ("svs", 532, 5, _padded(NEEDLE, 8)[:48].ljust(48, b" ")),
    ("ndpi", 65439, 4, _padded(NEEDLE, 4)),                    # FocusPoints LONG
    ("ndpi", 65422, 12, _padded(b"Zephyrina 19870317", 8)),    # XOffsetFromSlideCenter DOUBLE
]


@pytest.mark.parametrize("fmt,tag,typ,raw", SPELLING, ids=[f"{f}-{t}-type{y}-{k}" for k, (f, t, y, _) in enumerate(SPELLING)])
def test_numbers_spelling_the_needle_are_not_published(fmt, tag, typ, raw, tmp_path, monkeypatch):
    """A SHORT/LONG/RATIONAL/DOUBLE array a profile keeps as numbers, holding the needle's bytes:
    published as it was, verified clean (numbers are no needles). Now the value fails its type
    ("its stored bytes spell text") and is removed."""
    place = _numbers_place(fmt, tag, typ, raw)
    src = place.build(tmp_path)
    assert input_holds_needle(src)
    outcome, outdir = _run(place, tmp_path, monkeypatch, src)
    assert outcome == "published"
    assert all(tag not in entries for entries in _out_tags(outdir))


def test_numbers_spelling_text_in_the_other_byte_order_are_removed(tmp_path, monkeypatch):
    """Values whose little-endian bytes spell the name, in a big-endian file (a byte search of
    the file sees it pair-swapped; anyone re-reading the numbers sees the name)."""
    raw = struct.pack(">10H", *struct.unpack("<10H", _padded(b"Zephyrina Quixote", 2) + b"  "))
    place = _numbers_place("tiff-be", 301, 3, raw)
    _, outdir = _run(place, tmp_path, monkeypatch)
    assert all(301 not in entries for entries in _out_tags(outdir))


def test_the_decision_records_why(tmp_path):
    from wsideid.pipeline import inspect
    src = _numbers_place(*SPELLING[0]).build(tmp_path)
    plan = inspect(str(src))
    ds = [d for d in plan.fields if d.field.tag == 301]
    assert ds and all(d.action == "remove" and d.failed and "spell text" in d.rule for d in ds), \
        [(d.action, d.rule) for d in ds]
    assert "Zephyrina" not in " ".join(d.rule for d in ds)  # the audit names the check, never the value


# ------------------------------------------------------------------ numbers stored as text
STORED_AS_TEXT = [  # (base, tag, TIFF type): a tag the profile keeps as a number and the structural
    # type check does not cover (it refuses WhitePoint, ResolutionUnit, NDPI numeric tags as text;
    # OpenSlide refuses SMin/SMaxSampleValue as text)
    ("tiff", 301, 2), ("tiff", 301, 1), ("tiff", 301, 7),    # TransferFunction (numbers) as ASCII, BYTE, UNDEFINED
    ("tiff-be", 301, 7),
]


@pytest.mark.parametrize("fmt,tag,typ", STORED_AS_TEXT, ids=[f"{f}-{t}-type{y}" for f, t, y in STORED_AS_TEXT])
def test_numbers_stored_as_byte_ascii_or_undefined_are_not_kept(fmt, tag, typ, tmp_path, monkeypatch):
    """"2477139" stored as ASCII (or BYTE/UNDEFINED printable bytes) parses as a number and was
    published under a numeric keep; BYTE, ASCII and UNDEFINED are never a numeric keep now."""
    value = b"2477139"
    raw = value + b"\0" if typ == 2 else value

    def entry(src, i):
        return OutEntry(tag, typ, len(raw), raw)
    place = pm.Place(f"{fmt}-{tag}-as-type{typ}", pm.tiff_with(fmt, "all", {tag: entry}))
    outcome, outdir = _run(place, tmp_path, monkeypatch)
    assert outcome == "published"
    assert all(tag not in entries for entries in _out_tags(outdir))
    assert not pc.find_in_tree(outdir, ["2477139"])


def test_a_profile_keeping_text_types_is_still_free_to_keep_text(tmp_path):
    """The rule is about numeric keeps: Make (an enum of names) stays ASCII and kept."""
    spec = parse_spec({"type": "enum", "values": ["Aperio"]}, "keep", "t.Make")
    f = Field("ifd[0]/Make", "tags:Make", "Aperio", ifd=0, tag=271, stored_type=2)
    assert check(f, spec, DatePolicy("remove")).ok
    num = parse_spec({"type": "integer"}, "keep", "t.X")
    assert not check(Field("p", "tags:X", "12", tag=1, stored_type=2), num, DatePolicy("remove")).ok
    assert check(Field("p", "tags:X", "12", tag=1, stored_type=3, kind=ValueKind.NUMBER), num, DatePolicy("remove")).ok


# ------------------------------------------------------------------ dates stored as numbers
def _svs_key(folder: Path) -> Path:
    dst = folder / "slide.svs"
    desc = pc.aperio_description(pc.W, pc.H, None, {"StripeWidth": pm.DATE_DA, "OriginalWidth": "19870317.0"})
    pc.rewrite_tiff(pm.base("svs", folder), dst, {0: {270: pm.ascii_entry(270, desc)}})
    return dst


def _ndpi_tag(folder: Path) -> Path:
    return pm.tiff_with("ndpi", "all", {65425: lambda s, i: OutEntry(65425, 4, 1, struct.pack("<I", 19870317))})(folder)


def _dicom_numbers(ds) -> None:
    ds.InstanceNumber = pm.DATE_DA                  # IS (Type 1: the dummy "0" takes its place)


@pytest.mark.parametrize("build", [_svs_key, _ndpi_tag, pm.dicom_builder(_dicom_numbers)],
                         ids=["aperio-key", "ndpi-tag", "dicom-is-ds"])
def test_a_date_is_never_kept_as_a_number(build, tmp_path, monkeypatch):
    """19870317 as an Aperio integer key, an NDPI LONG and a DICOM IS/DS parsed as numbers and was
    published untouched, no date policy applied (numbers are no needles). A number whose integer
    part reads as a date now fails its type: removed (DICOM: the Type's neutral value)."""
    place = pm.Place(f"date-as-number-{build.__name__}", build)
    src = build(tmp_path)
    outcome, outdir = _run(place, tmp_path, monkeypatch, src)
    assert outcome == "published"
    if "ndpi" in str(src):
        assert all(65425 not in entries for entries in _out_tags(outdir))


@pytest.mark.parametrize("value,ok", [("20190312", False), ("19650704", False), ("04071965", False),
                                      ("0.19650704", True), ("2040", True),
                                      ("20191399", True), ("123456789", True), ("1,19650704", False)])
def test_dates_in_number_values(value, ok):
    """A vendor XML number, an NDPI property, a TIFF tag: one rule in the value policy. Fraction
    digits are not read (a known gap: docs/threat-model.md)."""
    spec = parse_spec({"type": "numbers"}, "keep", "t.X")
    f = Field("Image/Pixels/@PhysicalSizeX", "ome:PhysicalSizeX", value, kind=ValueKind.NUMBER)
    assert check(f, spec, DatePolicy("remove")).ok is ok


@pytest.mark.parametrize("value,vr", [("19870317", "IS"), ("19870317.5", "DS"), (19870317, "UL"),
                                      ([1, 19870317], "UL"), ("1987031.7", "DS")])
def test_dicom_numbers_that_read_as_dates(value, vr):
    from wsideid.dicom.values import typed_valid
    assert typed_valid(value, vr) is (value == "1987031.7")


# ------------------------------------------------------------------ ICC profiles
def _xyz(x, y, z) -> bytes:
    return b"XYZ \0\0\0\0" + struct.pack(">3i", *(int(round(v * 65536)) for v in (x, y, z)))


def _icc(extra: list[tuple[bytes, bytes]]) -> bytes:
    """A valid ICC v2 RGB display profile (sRGB-like numbers, a 1024-entry tone curve) plus ``extra`` tags."""
    import numpy as np
    curve = (np.linspace(0, 1, 1024) ** 2.2 * 65535).round().astype(">u2").tobytes()
    curv = b"curv\0\0\0\0" + struct.pack(">I", 1024) + curve
    tags = [(b"desc", b"desc\0\0\0\0" + struct.pack(">I", 5) + b"sRGB\0" + bytes(4 + 4 + 2 + 1 + 67)),
            (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)] + extra
    off = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        body += b"\0" * (-(off + len(body)) % 4)
        table += sig + struct.pack(">II", off + len(body), len(data))
        body += data
    size = off + len(body)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + bytes(12)
              + b"acspAPPL" + bytes(4) + bytes(16) + bytes(4) + _xyz(0.9642, 1.0, 0.8249)[8:] + bytes(4 + 16 + 28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


ICC_PLANTS = {
    "sig-tag-letters": [(b"tech", b"sig \0\0\0\0QUIX")],
    "xyz-spelling": [(b"lumi", b"XYZ \0\0\0\0" + b"Zephyrina QX")],
    "sf32-digits": [(b"chad", b"sf32\0\0\0\0" + b"\0\0\0\x0119870317" + bytes(26))],
    "curve-spelling": [(b"kTRC", b"curv\0\0\0\0" + struct.pack(">I", 9) + b"Zephyrina Quixote ")],
    "private-tag-signature": [(b"QUIX", b"XYZ \0\0\0\0" + bytes(12))],
}


@pytest.mark.parametrize("kind", sorted(ICC_PLANTS))
def test_icc_numbers_that_spell_text_drop_the_profile(kind):
    from wsideid.icc import sanitize_icc
    clean, _ = sanitize_icc(_icc([]))
    assert clean, "the base profile does not sanitise (builder bug)"
    assert sanitize_icc(_icc(ICC_PLANTS[kind])) == (b"", [])


def test_icc_datetime_tag_is_zeroed():
    from wsideid.icc import sanitize_icc
    when = struct.pack(">6H", 1987, 3, 17, 10, 22, 33)
    clean, _ = sanitize_icc(_icc([(b"calt", b"dtim\0\0\0\0" + when)]))
    assert clean and when not in clean and b"dtim" + bytes(16) in clean


def test_icc_of_real_slides_and_registered_signatures_still_kept():
    """Real slides' profiles (the sRGB of an Aperio SVS and a DICOM, lcms's of a TIFF) keep their
    curves and numbers; a technology tag with a registered signature (CRT) stays."""
    from wsideid.icc import sanitize_icc
    clean, _ = sanitize_icc(_icc([(b"tech", b"sig \0\0\0\0CRT ")]))
    assert b"CRT " in clean
    profiles = []
    from wsideid.tiff.container import read_tiff
    for rel in ("svs/tcga-cr-7395-01a-01-ts1.svs", "tiff/openslide-python_boxes.tiff"):
        if (TESTDATA / rel).exists():
            profiles += [ifd.entries[34675].raw for ifd in read_tiff(str(TESTDATA / rel)).all_ifds()
                         if 34675 in ifd.entries]
    if not profiles:
        pytest.skip("no real slides in ../shared/testdata")
    for raw in profiles:
        clean, _ = sanitize_icc(raw)
        assert clean
        n = struct.unpack(">I", raw[128:132])[0]
        for i in range(n):
            sig, off, length = struct.unpack(">4sII", raw[132 + 12 * i:144 + 12 * i])
            if raw[off:off + 4] in (b"curv", b"para", b"XYZ "):
                assert clean[off + 8:off + length] == raw[off + 8:off + length], sig


def test_icc_spelling_text_is_not_published(tmp_path, monkeypatch):
    """End to end: a generic TIFF whose kept ICC profile holds the name in an XYZ tag's numbers was
    published with the name (ICC numbers are copied as numbers); now the profile is dropped."""
    prof = _icc([(b"lumi", b"XYZ \0\0\0\0" + b"Zephyrina QX"), (b"bkpt", b"XYZ \0\0\0\0" + b"Quixote ZX24")])
    place = pm.Place("icc-numbers", pm.tiff_with("tiff", "first", {34675: lambda s, i: pm.blob_entry(34675, prof)}))
    src = place.build(tmp_path)
    assert input_holds_needle(src)
    outcome, outdir = _run(place, tmp_path, monkeypatch, src)
    assert outcome == "published"
    assert all(34675 not in entries for entries in _out_tags(outdir))


# ------------------------------------------------------------------ DICOM binary values
def _dicom_binary(ds) -> None:
    ds.LongitudinalTemporalOffsetFromEvent = struct.unpack("<d", b"Zephyrin")[0]   # FD, Type 3
    ds.RecommendedAbsentPixelCIELabValue = list(struct.unpack("<4H", b"Quixote "))  # US, Type 3
    ds.AcquisitionDuration = struct.unpack("<d", b"19870317")[0]                  # FD, digits


def test_dicom_binary_values_spelling_text_are_not_published(tmp_path, monkeypatch):
    """FD and US values of attributes the IOD keeps, whose bytes are the name or the date's digits:
    published as they were (binary numbers are no needles). Now removed (Type 3)."""
    import pydicom
    place = pm.Place("dicom-binary-spells", pm.dicom_builder(_dicom_binary))
    src = place.build(tmp_path)
    assert b"Zephyrin" in src.read_bytes() if src.is_file() else True
    outcome, outdir = _run(place, tmp_path, monkeypatch, src)
    assert outcome == "published"
    files = [p for p in outdir.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm"]
    assert files
    for p in files:
        raw = p.read_bytes()
        assert b"Zephyrin" not in raw and b"Quixote" not in raw and b"19870317" not in raw, p
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert "LongitudinalTemporalOffsetFromEvent" not in ds and "RecommendedAbsentPixelCIELabValue" not in ds


@pytest.mark.parametrize("vr,value,spells", [
    ("OB", NEEDLE, True), ("UN", b"\x01\x02Zephyrina\x00", True), ("OW", UTF16_SHORTS, True),
    ("OB", bytes(range(256)), False), ("FL", 16.061538696289062, False), ("UL", [957, 715], False),
    ("OW", struct.pack("<256H", *range(0, 65536, 256)), False)])
def test_dicom_binary_spelling_rule(vr, value, spells):
    from pydicom.dataelem import DataElement

    from wsideid.dicom.values import binary_spells_text
    assert binary_spells_text(DataElement(0x00091010, vr, value)) is spells


# ------------------------------------------------------------------ MIRAX index records outside the grid
@pytest.mark.parametrize("level,image", [(0, 3), (0, 4 * 4 + 7), (1, 1), (0, -1)],
                         ids=["repeats-a-placed-image", "past-the-grid", "off-the-level-step", "negative"])
def test_mirax_record_outside_the_tile_grid_is_refused(level, image, tmp_path, monkeypatch):
    """A zoom-level record that places no image of its own: a second record for a placed image (OpenSlide
    shows one of them; on main the other, a JPEG of the name, was published unseen by any detector),
    or one past the grid, off the level's step or negative (OpenSlide refused the source: a refusal
    in verification). Refused now when the slide is opened, in one line."""
    import io as _io

    from PIL import Image

    from wsideid.mrxs.index import Record, build_index, read_index
    from wsideid.mrxs.synth import SLIDE_ID, make_mrxs
    from wsideid.synth import label_image
    src = tmp_path / "in" / "slide.mrxs"
    src.parent.mkdir()
    make_mrxs(str(src), levels=2)  # a 4 x 4 grid
    folder = src.with_suffix("")
    buf = _io.BytesIO()
    Image.fromarray(label_image(256, 256, [pm.NAME.upper(), pm.ACC])).save(buf, "JPEG")
    data = folder / "Data0000.dat"
    off = data.stat().st_size
    with open(data, "ab") as fh:
        fh.write(buf.getvalue())
    levels, nonhier = read_index((folder / "Index.dat").read_bytes(), SLIDE_ID, 2, 5)
    levels[level].append(Record(0, off, len(buf.getvalue()), image))
    (folder / "Index.dat").write_bytes(build_index(SLIDE_ID, levels, nonhier))
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch)
    assert rc == 2 and not published(outdir), (rc, err)
    assert err.strip().count("\n") == 0 and "outside the slide's tile grid" in err, err


def test_a_clean_mirax_still_publishes(tmp_path, monkeypatch):
    from wsideid.mrxs.synth import make_mrxs
    src = tmp_path / "in" / "slide.mrxs"
    src.parent.mkdir()
    make_mrxs(str(src), levels=3)
    rc, err = _deid(src, tmp_path / "out", monkeypatch)
    assert rc == 0, err


# ------------------------------------------------------------------ NDPI McuStarts
def test_ndpi_mcu_starts_must_be_restart_offsets(tmp_path, monkeypatch):
    """McuStarts are offsets, not read for words; a name written over them was published (hostile
    soak, spells-text family). They must now point after the strip's restart markers."""
    from wsideid.tiff.container import read_tiff
    base = pm.base("ndpi", tmp_path)
    e = read_tiff(str(base)).ifds[0].entries[65426]
    text = b"St Elsewhere Hospital".ljust(len(e.raw), b" ")[:len(e.raw)]
    place = pm.Place("ndpi-mcustarts-text", pm.tiff_with("ndpi", "first", {65426: lambda s, i: OutEntry(65426, 4, e.count, text)}))
    src = place.build(tmp_path)
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch)
    assert rc == 2 and "McuStarts" in err and not published(outdir), err
    rc, err = _deid(base, tmp_path / "out-clean", monkeypatch)
    assert rc == 0, err


def test_the_soak_spells_text_family_plants_readable_values(tmp_path):
    """bench/hostile_soak.py --family spells-text: each mutant holds a planted value in a numeric tag."""
    from fuzz import formats, hostile_cases
    from fuzz.proc import _needles_in
    cases = hostile_cases.format_cases("tiff", 1, None, "spells-text")
    assert len(cases) >= 6 and all(":spells-text:" in c.id for c in cases)
    for c in cases[:3]:
        src = c.build(tmp_path / c.id.replace(":", "_"))
        assert _needles_in(src.read_bytes(), c.needles), c.id
    formats.cleanup()
