"""Planted PHI, seventh round (attacker audit): places the earlier rounds did not try, and the
coding-scheme OIDs moved into the DICOM profile.

Judged by the matrix's rule (refused or flagged with nothing published, or published with no
spelling of the needle anywhere in OUTDIR); dates and record numbers the matrix's search does not
spell are searched here too (``MORE``). The attacks that did not leak are kept as regression tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from test_planted_matrix import judge
from test_planted_round5 import _deid

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
MORE = ["1987.03.17", "4477139", "19870317", "17.03.1987", "zephyrina", "quixote", "87.03.17", "3.17.87"]


def _run(name: str, src: Path, tmp_path: Path, monkeypatch, *extra: str) -> tuple[str, Path]:
    """The matrix's judgement, then the searches it does not spell: nothing of MORE in OUTDIR."""
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch, *extra)
    outcome = judge(pm.Place(name, lambda f: src), src, outdir, rc, err)
    hits = pc.find_in_tree(outdir, MORE) if outdir.exists() else {}
    assert not hits, f"{name}: {sorted(hits)} in OUTDIR ({outcome})"
    return outcome, outdir


# ------------------------------------------------------------------ coding-scheme OIDs in the profile
SCT_OID = "2.16.840.1.113883.6.96"


def _scheme_uid(ds) -> None:
    for item in ds.get("OpticalPathSequence", []):
        for code in item.get("IlluminationTypeCodeSequence", []):
            code.CodingSchemeUID = SCT_OID


def _scheme_uid_decisions(src: Path, profile: Path | None) -> set[str]:
    from wsideid.drivers.dicom import plan_source
    from wsideid.keys import Secret
    from wsideid.options import DeidOptions
    from wsideid.registry import open_input
    opened = open_input(src)
    plan = plan_source(opened.container, DeidOptions(profile=str(profile) if profile else None),
                       Secret(b"s" * 32, "test"))
    return {f"{d.action}:{d.new_value}" for d in plan.fields if d.field.key == "dicom:CodingSchemeUID"}


def test_coding_scheme_oids_are_the_profiles(tmp_path):
    """The OIDs kept unchanged are a list in formats/dicom.toml (``coding_scheme_uids``), one
    comment per OID, where a privacy officer reviews them; an override that leaves SNOMED CT's OID
    out makes its CodingSchemeUID keyed like any other UID."""
    from wsideid.profiles import load_profile
    shipped = load_profile("dicom").data["dicom_options"]["coding_scheme_uids"]
    assert SCT_OID in shipped and len(shipped) == 11
    text = (Path(__file__).resolve().parents[1] / "formats" / "dicom.toml").read_text()
    assert all(f'"{oid}",' in text and "#" in text.split(f'"{oid}",', 1)[1].splitlines()[0] for oid in shipped)
    src = pm.dicom_builder(_scheme_uid)(tmp_path)
    assert _scheme_uid_decisions(src, None) == {f"keep:{SCT_OID}"}
    override = tmp_path / "no-sct.toml"
    rest = ", ".join(f'"{o}"' for o in shipped if o != SCT_OID)
    override.write_text(f'[profile]\nformat = "dicom"\n\n[dicom_options]\ncoding_scheme_uids = [{rest}]\n')
    changed = _scheme_uid_decisions(src, override)
    assert len(changed) == 1 and next(iter(changed)).startswith("replace:2.25."), changed


def test_a_coding_scheme_oid_list_of_other_things_is_refused(tmp_path):
    from wsideid.dicom.rules import DicomRules
    from wsideid.errors import ProfileError
    from wsideid.profiles import load_profile
    for bad in ('"1.2.840.10008.19870317"', '"Zephyrina"', '"2.16.840.01"', "7"):
        override = tmp_path / "bad.toml"
        override.write_text(f'[profile]\nformat = "dicom"\n\n[dicom_options]\ncoding_scheme_uids = [{bad}]\n')
        with pytest.raises(ProfileError):
            DicomRules(load_profile("dicom", override), set())


# ------------------------------------------------------------------ two-digit-year dates in version grammars
@pytest.mark.parametrize("text,holds", [
    # a zero-padded part is a date's spelling, never a version's: any order
    ("87.03.17", True), ("v87.03.17", True), ("1.87.03.17", True), ("87.03.17.1", True), ("03.17.87", True),
    ("version 87.03.17", True),
    # unpadded, alone, with a part only a year can be (>= 32)
    ("87.3.17", True), ("3.17.87", True), ("17.3.87", True), ("45.2.1", True),
    # real versions and UIDs stay (NDP.scan 2.5.89 is the shape of a date with year last: left open)
    ("NDP.scan 2.5.89", False), ("Aperio Image Library v11.0.37", False), ("v10.0.51", False), ("v11.2.1", False),
    ("v12.2.2", False), ("OME Bio-Formats 5.2.2", False), ("OME Bio-Formats 6.0.0-SNAPSHOT", False),
    ("wsiget v0.0.1", False), ("1.2.3", False), ("libvips 8.15.1", False), ("5.15.10", False), ("v10.2.41", False),
    ("12.4.3.5008", False), ("1.6.5807", False), ("1.2.840.10008.5.1.4.1.1.77.1.6", False), ("3.17.25", False),
])
def test_two_digit_year_dates_in_kept_text(text, holds):
    from wsideid.dates import kept_text_holds_date
    assert kept_text_holds_date(text) is holds


_ome_creator = pm.xml_edited("ome", lambda x: x.replace('Creator="OME Bio-Formats 6.8.0"',
                                                        'Creator="OME Bio-Formats 87.03.17"'))


def _ndpi_versions(folder: Path) -> Path:
    from test_planted_round6 import _ndpi_version
    return _ndpi_version(folder, "87.03.17", "NDP.scan 3.17.87")


def _dicom_versions(ds) -> None:
    ds.SoftwareVersions = ["87.03.17", "17.3.87"]


TWO_DIGIT_PLACES = {
    "ome-creator": (_ome_creator, "87.03.17"),
    "ndpi-system-version-and-software": (_ndpi_versions, "87.03.17"),
    "dicom-software-versions": (pm.dicom_builder(_dicom_versions), "87.03.17"),
}


@pytest.mark.parametrize("where", sorted(TWO_DIGIT_PLACES))
def test_a_version_spelling_a_two_digit_year_date_is_not_kept(where, tmp_path, monkeypatch):
    """Round 6 left dates with a two-digit year open: "87.03.17" matched the version grammars
    (OME Creator, NDPI system.version and Software, DICOM SoftwareVersions) and was published."""
    build, text = TWO_DIGIT_PLACES[where]
    src = build(tmp_path)
    files = [src] if src.is_file() else list(src.rglob("*.dcm"))
    assert any(text.encode() in p.read_bytes() for p in files)
    _run(f"two-digit-year-{where}", src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ JPEG 2000 CAP / CPF / POC
NOTE = b"Zephyrina Quixote ZX24-77139 1987-03-17"


def j2k_plant(cs: bytes, kind: str) -> bytes:
    """A codestream with the needle in a CAP (after Pcap's values), a CPF (as its 16-bit values)
    or a POC (after one whole progression change) of the main header."""
    import struct
    sot = cs.find(b"\xff\x90")
    csiz = struct.unpack(">H", cs[40:42])[0]
    c = 1 if csiz < 257 else 2
    body = {"cap": struct.pack(">I", 0) + NOTE, "cpf": NOTE + b" " * (len(NOTE) % 2),
            "poc": b"\0" + bytes(c) + struct.pack(">H", 1) + b"\x21" + csiz.to_bytes(c, "big") + b"\0" + NOTE}[kind]
    seg = {"cap": b"\xff\x50", "cpf": b"\xff\x59", "poc": b"\xff\x5f"}[kind] + struct.pack(">H", 2 + len(body)) + body
    at = 4 + struct.unpack(">H", cs[4:6])[0] if kind == "cap" else sot  # CAP right after SIZ
    return cs[:at] + seg + cs[at:]


def _encoded_j2k() -> bytes:
    import imagecodecs
    import numpy as np
    rgb = (np.arange(64 * 64 * 3) % 251).astype("uint8").reshape(64, 64, 3)
    return bytes(imagecodecs.jpeg2k_encode(rgb, level=0, codecformat="J2K", mct=False))


@pytest.mark.parametrize("kind", ["cap", "cpf", "poc"])
def test_j2k_rule_leaves_no_text_in_cap_cpf_poc(kind):
    """CAP and POC segments are kept (decoding reads them) only at the size their numbers fix; CPF
    (a profile's name, read by no decoder to decode) is dropped like COM."""
    from wsideid.jpeg import j2k
    cs = j2k_plant(_encoded_j2k(), kind)
    try:
        out = j2k.clean(cs)
    except j2k.UnsafeJ2k:
        assert kind != "cpf"
        return
    assert NOTE not in out and b"Zephyrina" not in out


def _j2k_frames(kind: str):
    def edit(ds):
        from pydicom.encaps import encapsulate, generate_frames
        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))):
            fr = bytes(fr)
            fr = j2k_plant(fr, kind) if fr.startswith(b"\xff\x4f") else fr
            out.append(fr + b"\0" * (len(fr) % 2))
        ds.PixelData = encapsulate(out)
    return edit


@pytest.mark.skipif(not (TESTDATA / "dicom" / "wsi2dcm_jpeg2000.dcm").exists(), reason="real test data not present")
@pytest.mark.parametrize("kind", ["cap", "cpf", "poc"])
def test_j2k_frames_with_text_in_cap_cpf_poc(kind, tmp_path, monkeypatch):
    """A real JPEG 2000 DICOM (wsi2dcm) whose frames hold the needle in a CAP after Pcap's values or
    as a CPF's values: both were published verbatim, verified clean (a POC with bytes after its
    progression changes did not decode and was refused). Now CAP and POC must have the size their
    values fix and CPF is dropped."""
    src = pm.dicom_builder(_j2k_frames(kind), real=TESTDATA / "dicom" / "wsi2dcm_jpeg2000.dcm")(tmp_path)
    assert NOTE in src.read_bytes()
    _run(f"j2k-{kind}", src, tmp_path, monkeypatch)


def _jp2_with(sub_edit) -> bytes:
    """A JP2 file whose header boxes pass through ``sub_edit(kind, body) -> body``."""
    import imagecodecs
    import numpy as np

    from wsideid.jpeg import j2k
    rgb = (np.arange(64 * 64 * 3) % 251).astype("uint8").reshape(64, 64, 3)
    jp2 = bytes(imagecodecs.jpeg2k_encode(rgb, level=0, codecformat="JP2", mct=False))
    out = [jp2[:12]]
    for kind, body in j2k._boxes(jp2, 12, len(jp2)):
        if kind == b"jp2h":
            body = b"".join(j2k._box(k, sub_edit(k, b)) for k, b in j2k._boxes(body, 0, len(body)))
            body += j2k._box(b"cdef", sub_edit(b"cdef", b"\0\x03" + b"\0\0\0\0\0\x01\0\x01\0\0\0\x02\0\x02\0\0\0\x03"))
        out.append(j2k._box(kind, body))
    return b"".join(out)


@pytest.mark.parametrize("box", [b"ihdr", b"cdef"])
def test_jp2_header_boxes_hold_nothing_after_their_values(box):
    """The JP2 header boxes decoding needs were kept as they were: text after an ihdr's 14 bytes
    or a cdef's channel list stayed in the cleaned stream. Each must be the size its values fix."""
    from wsideid.jpeg import j2k
    clean = j2k.clean(_jp2_with(lambda k, b: b))
    assert clean.startswith(j2k.JP2_SIGNATURE)
    evil = _jp2_with(lambda k, b: b + NOTE if k == box else b)
    with pytest.raises(j2k.UnsafeJ2k):
        j2k.clean(evil)


# ------------------------------------------------------------------ round 6's other open items
@pytest.mark.parametrize("text,holds", [
    ("tifffile 2015.3.5", True), ("tifffile 2017.9.29", True),         # before tifffile's calendar versions
    ("tifffile.py 2026.3.3", False), ("tifffile 2018.10.18", False), ("tifffile 2023.11.28", False),
])
def test_tifffile_calendar_versions_start_in_2018(text, holds):
    """tifffile's own calendar version stays (its releases from 2018.10.18 on); a date of an earlier
    year in that spelling right after its name ("tifffile 2015.3.5") was kept as a version."""
    from wsideid.dates import kept_text_holds_date
    assert kept_text_holds_date(text) is holds


def _svs_record_size(folder: Path) -> Path:
    from test_planted_round6 import _svs_header
    return _svs_header(folder, f"Aperio Image Library v11.2.1\r\n4477139x1 [0,0 {pc.W}x{pc.H}] (256x256) JPEG/RGB Q=70")


def test_an_aperio_header_size_of_seven_digits_is_not_kept(tmp_path, monkeypatch):
    """The header's sizes and region corners admitted 7 digits: a record number written as an
    image size ("4477139x1") was published. 6 digits hold any slide (75 mm at 0.1 um/px)."""
    from wsideid.tiff_family.vendors.aperio import parse_header
    assert parse_header("Aperio Image Library v11.2.1 \r\n46000x32914 [42673,5576 2220x2967] (240x240) "
                        "JPEG/RGB Q=30").dropped == []
    src = _svs_record_size(tmp_path)
    assert b"4477139x1" in src.read_bytes()
    _run("svs-header-seven-digit-size", src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ guards: the real slides
def _real_slides() -> list[Path]:
    if not TESTDATA.is_dir():
        return []
    return sorted(p for p in TESTDATA.rglob("*") if p.suffix in (".svs", ".ndpi", ".tif", ".tiff", ".dcm")
                  and "broken" not in p.name)


@pytest.mark.skipif(not _real_slides(), reason="real test data not present (../shared/testdata)")
def test_real_slides_keep_their_versions_headers_and_streams():
    """This round's rules leave the real slides' plans as they were: no kept version read as a
    date (two-digit years, tifffile's calendar years), no Aperio header token dropped (6-digit
    sizes), and their JPEG 2000 streams (Aperio/Kakadu tiles, wsi2dcm frames) reduce as before."""
    from wsideid.errors import WsideidError
    from wsideid.options import DeidOptions
    from wsideid.registry import open_input
    planned = 0
    for path in _real_slides():
        try:
            opened = open_input(path)
            plan = opened.driver.plan(opened, DeidOptions())
        except WsideidError:
            continue  # refused before this round too (not a supported slide)
        planned += 1
        for d in plan.fields:
            why = d.rule or ""
            assert "a date" not in why and "date outside" not in why, (path.name, d.field.path, why)
            if d.field.key == "description:@header":
                assert d.action == "keep", (path.name, d.field.path, why)
    assert planned >= 15


@pytest.mark.skipif(not (TESTDATA / "svs" / "tcga-cr-7395-01a-01-ts1.svs").exists(), reason="real test data not present")
def test_real_j2k_streams_still_reduce():
    import pydicom
    from pydicom.encaps import generate_frames

    from wsideid.jpeg import j2k
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    path = TESTDATA / "svs" / "tcga-cr-7395-01a-01-ts1.svs"
    tf = read_tiff(str(path))
    streams = []
    with open(path, "rb") as fh:
        for ifd in tf.ifds:
            data = image_data(ifd, tf.byteorder)
            for off, n in list(zip(data.src_offsets, data.src_counts))[:4] if data is not None else []:
                fh.seek(int(off))
                streams.append(fh.read(int(n)))
    dcm = TESTDATA / "dicom" / "wsi2dcm_jpeg2000.dcm"
    if dcm.exists():
        ds = pydicom.dcmread(dcm)
        streams += [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))][:4]
    j2ks = [s for s in streams if s[:2] == b"\xff\x4f"]
    assert len(j2ks) >= 4
    for s in j2ks:
        j2k.clean(s)


def tlm_plant(cs: bytes, extra: bytes = NOTE) -> bytes:
    """A codestream with a TLM (tile-part lengths) naming its tile-parts, then ``extra``."""
    import struct
    sot = cs.find(b"\xff\x90")
    parts, pos = [], sot
    while cs[pos:pos + 2] == b"\xff\x90":
        parts.append((struct.unpack(">H", cs[pos + 4:pos + 6])[0], struct.unpack(">I", cs[pos + 6:pos + 10])[0]))
        pos += parts[-1][1]
    body = bytes([0, (1 << 4) | (1 << 6)]) + b"".join(struct.pack(">BI", i, n) for i, n in parts)
    body += extra + b"\0" * (-len(extra) % 5)
    return cs[:sot] + b"\xff\x55" + struct.pack(">H", 2 + len(body)) + body + cs[sot:]


def test_j2k_tlm_is_kept_only_as_the_tile_part_index():
    """A TLM whose tile-part lengths still hold was kept whole: entries or bytes after the index
    (a name, read by no decoder) stayed. Kept now only when it is exactly the index."""
    from wsideid.jpeg import j2k
    exact = j2k.clean(tlm_plant(_encoded_j2k(), b""))
    assert b"\xff\x55" in exact[:exact.find(b"\xff\x90")] and j2k.clean(exact) == exact
    out = j2k.clean(tlm_plant(_encoded_j2k()))
    assert NOTE not in out and b"\xff\x55" not in out[:out.find(b"\xff\x90")]


@pytest.mark.skipif(not (TESTDATA / "dicom" / "wsi2dcm_jpeg2000.dcm").exists(), reason="real test data not present")
def test_j2k_frames_with_text_in_tlm(tmp_path, monkeypatch):
    def edit(ds):
        from pydicom.encaps import encapsulate, generate_frames
        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))):
            fr = bytes(fr)
            fr = tlm_plant(fr) if fr.startswith(b"\xff\x4f") else fr
            out.append(fr + b"\0" * (len(fr) % 2))
        ds.PixelData = encapsulate(out)
    src = pm.dicom_builder(edit, real=TESTDATA / "dicom" / "wsi2dcm_jpeg2000.dcm")(tmp_path)
    assert NOTE in src.read_bytes()
    _run("j2k-tlm", src, tmp_path, monkeypatch)


def test_a_tifffile_version_before_2018_is_not_kept(tmp_path, monkeypatch):
    """A generic TIFF's Software "tifffile 2015.3.5" passed as tifffile's calendar version and
    was published (round 6's open item)."""
    from test_planted_round6 import _tiff_tag
    src = _tiff_tag("tiff", 305, "tifffile 2015.3.5")(tmp_path)
    assert b"tifffile 2015.3.5" in src.read_bytes()
    _, outdir = _run("tiff-software-tifffile-2015", src, tmp_path, monkeypatch)
    assert not pc.find_in_tree(outdir, ["2015.3.5"])


SWEEP_TWO_DIGIT = ["87.03.17", "87.3.17", "3.17.87", "17.3.87", "03.17.87", "17.03.87", "v87.03.17", "1.87.03.17",
                   "87.03.17.1", "version 87.03.17", "tifffile 2015.3.5", "tifffile 1999.3.17"]


def test_no_profile_pattern_keeps_a_two_digit_year_date():
    """Every allow-list pattern of every shipped profile against two-digit-year spellings of the
    planted date: none is kept as it is (round 6 found six version grammars admitting them)."""
    from test_planted_round6 import _profile_patterns

    from wsideid.dates import kept_text_holds_date
    kept = [(where, v) for where, rx in _profile_patterns() for v in SWEEP_TWO_DIGIT
            if rx.fullmatch(v) and not kept_text_holds_date(v)]
    assert not kept, kept
