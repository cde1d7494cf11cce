"""Planted PHI, sixth round (attacker audit): text the file chose that the tool wrote back without
reading it as a value, because a grammar or a root vouched for it.

Leaks (each published, verified clean, before its fix):
- Philips XML structural attributes written back without being fields: ``PMSVR`` ("I" + 30 letters)
  and ``DataObject@ObjectType`` (41 letters) were free words;
- kept profile keys with ``#``: any run of digits ("zFine[19870317]", "PSHV.4477139x"), the key
  written to the output as the file spelled it;
- version grammars admitting a date: "tifffile 17.03.1987", "NDP.scan 1987.03.17", "Aperio Image
  Library v17.03.1987" (Software tag and SVS header), "Philips 17.03.1987", BIF BuildVersion,
  DICOM SoftwareVersions;
- DICOM UIDs under the registry's root ``1.2.840.10008.`` kept as "the standard's" whatever followed
  (a birth date and a record number in a Study Instance UID), and the UIDs of attributes the profile
  keeps unchanged (CodingSchemeUID, ContextUID) exempt from the keyed-UID check.

Judged by the matrix's rule (refused or flagged with nothing published, or published with no spelling
of the needle anywhere in OUTDIR); dates and record numbers the matrix's search does not spell are
searched here too. The attacks that did not leak are kept as regression tests at the end.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from published_outputs import published
from test_planted_matrix import judge
from test_planted_round5 import SECRET, _deid
from wsideid import cli

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
MORE = ["1987.03.17", "4477139", "19870317", "17.03.1987", "zephyrina", "quixote"]


def _run(name: str, src: Path, tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """The matrix's judgement, then the searches it does not spell: nothing of MORE in OUTDIR."""
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch)
    outcome = judge(pm.Place(name, lambda f: src), src, outdir, rc, err)
    hits = pc.find_in_tree(outdir, MORE) if outdir.exists() else {}
    assert not hits, f"{name}: {sorted(hits)} in OUTDIR ({outcome})"
    return outcome, outdir


def _holds(src: Path, text: str) -> bool:
    files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
    return any(text.encode() in p.read_bytes() for p in files)


# ------------------------------------------------------------------ Philips structural attributes
def _philips(folder: Path, edit) -> Path:
    """The synthetic Philips TIFF with its XML edited while it is written."""
    import wsideid.synth_philips as sp
    orig = sp.philips_xml
    sp.philips_xml = lambda *a, **k: edit(orig(*a, **k))
    try:
        dst = folder / "slide.tiff"
        sp.make_philips_tiff(str(dst), 512, 512)
    finally:
        sp.philips_xml = orig
    return dst


PHILIPS_EDITS = {
    "pmsvr": lambda x: x.replace('PMSVR="IUInt16"', 'PMSVR="IZephyrinaQuixote"'),
    "objecttype-level": lambda x: x.replace('ObjectType="PixelDataRepresentation"', 'ObjectType="ZephyrinaQuixote"', 1),
    "objecttype-scanned-image": lambda x: x.replace('ObjectType="DPScannedImage"', 'ObjectType="ZephyrinaQuixote"', 1),
}


@pytest.mark.parametrize("where", sorted(PHILIPS_EDITS))
def test_philips_structural_attributes_are_closed_words(where, tmp_path, monkeypatch):
    """PMSVR and ObjectType are written back for every kept attribute's elements without being
    fields (no value policy, no needle): "IZephyrinaQuixote" and "ZephyrinaQuixote" matched their
    free-word grammars and were published. Now each is one of the Philips spellings, or a field
    (unknown: removed, recorded, searched for)."""
    src = _philips(tmp_path, PHILIPS_EDITS[where])
    assert _holds(src, "ZephyrinaQuixote")
    _run(f"philips-{where}", src, tmp_path, monkeypatch)


def test_philips_real_spellings_still_structure():
    from wsideid.tiff_family.vendors.philips import _OBJECT, _PMSVR
    for v in ("IString", "IStringArray", "IUInt16", "IUInt32", "IDouble", "IDoubleArray", "IDataObjectArray",
              "IUInt16Array"):
        assert _PMSVR.fullmatch(v), v
    for v in ("DPUfsImport", "DPScannedImage", "PixelDataRepresentation"):
        assert _OBJECT.fullmatch(v), v
    assert not _PMSVR.fullmatch("IZephyrina") and not _OBJECT.fullmatch("Zephyrina")


# ------------------------------------------------------------------ digits of kept keys
def test_kept_key_indices_hold_no_date_or_record_number(tmp_path, monkeypatch):
    """``"zFine[#]"`` and ``"PSHV.#x"`` matched any run of digits, and the kept key is written as the
    file spelled it: "zFine[19870317]" and "PSHV.4477139x" were published. ``#`` is 1-4 digits now;
    a longer index is an unknown key (removed, its name hashed in the audit)."""
    props = pc.NDPI_PROPS + "zFine[19870317]=1\r\nPSHV.4477139x=0.5\r\nzFine[3]=2\r\n"
    src = tmp_path / "slide.ndpi"
    pc.make_clean_ndpi(src, props=props)
    _, outdir = _run("ndpi-key-digits", src, tmp_path, monkeypatch)
    from wsideid.tiff.container import read_tiff
    out = read_tiff(str(outdir / published(outdir)[0]))
    assert "zFine[3]=2" in (out.ifds[0].text(65449) or "")  # a real index is still kept


def test_profile_wildcard_digits():
    from wsideid.profiles import _wildcard
    rx = _wildcard("zFine[#]")
    assert rx.fullmatch("zFine[0]") and rx.fullmatch("zFine[1234]")
    assert not rx.fullmatch("zFine[19870317]") and not rx.fullmatch("zFine[]")


# ------------------------------------------------------------------ versions that are dates
@pytest.mark.parametrize("text,holds", [
    ("17.03.1987", True), ("1987.03.17", True), ("v17.03.1987", True), ("tifffile 17.03.1987", True),
    ('"17.03.1987"', True), ("Aperio Image Library v17.03.1987", True), ("version 1987.3.17", True),
    ("NDP.scan 2.5.89", False), ("Aperio Image Library v12.0.15", False), ("v11.2.1", False),
    ("1.6.5807", False), ("Philips DP v1.0", False), ("3.0", False), ("12.4.3.5008", False),
    ("libvips 8.15.1", False), ("v10.0.50", False), ('"1.6.5807" "4.0.3"', False),
    # tifffile's calendar version (no leading zeros, right after its name) is its release, not a date
    ("tifffile.py 2026.3.3", False), ("tifffile 2023.11.28", False), ("tifffile 2026.03.03", True),
    ("QuPath 2026.3.3", True), ("tifffile 1987.3.17", True),
])
def test_kept_text_holds_date(text, holds):
    from wsideid.dates import kept_text_holds_date
    assert kept_text_holds_date(text) is holds


def test_a_version_holding_a_date_keeps_what_its_pattern_admits():
    """Cut, not removed, when what is left still matches: the product name stays (the same name
    kept in another field is then no part of a removed value)."""
    from wsideid.dates import DatePolicy
    from wsideid.model import Field
    from wsideid.valuepolicy import check, parse_spec
    spec = parse_spec({"pattern": r"tifffile( \d{1,4}(\.\d{1,6}){0,3})?"}, "keep", "t.Software")
    v = check(Field("p", "tags:Software", "tifffile 17.03.1987"), spec, DatePolicy("remove"))
    assert v.ok and v.value == "tifffile" and v.removed == ["17.03.1987"]
    strict = parse_spec({"pattern": r"tifffile \d{1,4}(\.\d{1,6}){0,3}"}, "keep", "t.Software")
    assert not check(Field("p", "tags:Software", "tifffile 17.03.1987"), strict, DatePolicy("remove")).ok


def _tiff_tag(fmt: str, tag: int, text: str, ifds: str = "first"):
    return pm.tiff_with(fmt, ifds, {tag: lambda s, i: pm.ascii_entry(tag, text)})


def _svs_header(folder: Path, head: str = f"Aperio Image Library v17.03.1987\r\n{pc.W}x{pc.H} [0,0 {pc.W}x{pc.H}] "
                                                "(256x256) JPEG/RGB Q=70") -> Path:
    dst = folder / "slide.svs"
    desc = pc.aperio_description(pc.W, pc.H, head, {})
    pc.rewrite_tiff(pm.base("svs", folder), dst, {0: {270: pm.ascii_entry(270, desc)}})
    return dst


def _ndpi_version(folder: Path, version: str = "1987.03.17", software: str = "NDP.scan 17.03.1987") -> Path:
    dst = folder / "slide.ndpi"
    pc.make_clean_ndpi(dst, props=pc.NDPI_PROPS.replace("system.version=1.0", f"system.version={version}"),
                       software=software)
    return dst


def _philips_software(folder: Path) -> Path:
    return _philips(folder, lambda x: x.replace("&quot;1.6.5807&quot; &quot;20240314_R51&quot;",
                                                "&quot;17.03.1987&quot; &quot;4.0.3&quot;"))


def _bif_version(folder: Path) -> Path:
    import wsideid.synth_vendors as sv
    orig = sv.bif_iscan
    sv.bif_iscan = lambda *a, **k: _set_attr(orig(*a, **k), "BuildVersion", "17.03.1987")
    try:
        dst = folder / "slide.bif"
        sv.make_bif(str(dst), cols=2, rows=2)
    finally:
        sv.bif_iscan = orig
    return dst


def _set_attr(xml: str, name: str, value: str) -> str:
    import re
    if f'{name}="' in xml:
        return re.sub(f'{name}="[^"]*"', f'{name}="{value}"', xml)
    return xml.replace("<iScan ", f'<iScan {name}="{value}" ', 1)


def _dicom_software(ds) -> None:
    ds.SoftwareVersions = ["1987.03.17", "17.03.1987"]


VERSION_PLACES = {
    "tiff-software": _tiff_tag("tiff", 305, "tifffile 17.03.1987"),
    "svs-software-tag": _tiff_tag("svs", 305, "Aperio Image Library v17.03.1987", "all"),
    "svs-header": _svs_header,
    "ndpi-software-and-system-version": _ndpi_version,
    "philips-software-versions": _philips_software,
    "bif-build-version": _bif_version,
    "dicom-software-versions": pm.dicom_builder(_dicom_software),
}


@pytest.mark.parametrize("where", sorted(VERSION_PLACES))
def test_a_version_spelling_a_date_is_not_kept(where, tmp_path, monkeypatch):
    """Version grammars (``\\d{1,4}(\\.\\d{1,6}){0,3}`` and kin) admit "17.03.1987" and "1987.03.17";
    the value parsed wholly as its pattern and was published as it was. A kept value that spells
    a date the parser reads (after "v" or a version word too) now fails its pattern."""
    src = VERSION_PLACES[where](tmp_path)
    assert _holds(src, "1987.03.17") or _holds(src, "17.03.1987")
    _run(f"version-date-{where}", src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ DICOM UIDs under the registry's root
UNDER_ROOT = "1.2.840.10008.19870317.4477139"


def _dicom_uids(ds) -> None:
    ds.StudyInstanceUID = UNDER_ROOT
    ds.FrameOfReferenceUID = UNDER_ROOT + ".1"
    for item in ds.get("OpticalPathSequence", []):
        for seq in ("IlluminationTypeCodeSequence", "IlluminationColorCodeSequence"):
            for code in item.get(seq, []):
                code.CodingSchemeUID = "2.16.840.1.113883.19870317.4477139"
                code.ContextUID = "1.2.840.10008.6.1.19870317"


def test_uids_under_the_registry_root_are_keyed(tmp_path, monkeypatch):
    """Any UID starting ``1.2.840.10008.`` was taken for the standard's: kept unchanged and exempt from
    ``identifiers-replaced``; so were CodingSchemeUID and ContextUID whatever they held. Now only a
    UID the registry lists (or a context group, or a listed coding scheme's OID) is kept; the rest
    are keyed like any other UID."""
    src = pm.dicom_builder(_dicom_uids)(tmp_path)
    assert _holds(src, UNDER_ROOT)
    _run("dicom-uids-under-root", src, tmp_path, monkeypatch)


def test_registry_uids():
    from wsideid.dicom.rules import DicomRules
    from wsideid.dicom.uids import is_registry_uid, is_standard_uid
    from wsideid.profiles import load_profile
    oids = DicomRules(load_profile("dicom"), set()).coding_scheme_uids
    for u in ("1.2.840.10008.5.1.4.1.1.77.1.6", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1",
              "1.2.840.10008.2.16.4", "1.2.840.10008.6.1.1", "1.2.840.10008.8.1.1"):
        assert is_registry_uid(u), u
    assert is_standard_uid("2.16.840.1.113883.6.96", oids) and not is_registry_uid("2.16.840.1.113883.6.96")
    for u in (UNDER_ROOT, "1.2.840.10008.6.1.19870317", "1.2.840.10008.", "2.16.840.1.113883.19870317"):
        assert not is_standard_uid(u, oids), u


@pytest.mark.skipif(not (TESTDATA / "dicom").is_dir(), reason="real test data not present (../shared/testdata)")
@pytest.mark.parametrize("name", ["highdicom_sm_image.dcm", "wsi2dcm_jpeg.dcm"])
def test_real_dicom_uids_and_versions(name, tmp_path, monkeypatch):
    """The same plants in real instances (highdicom, wsi2dcm)."""
    real = TESTDATA / "dicom" / name
    if not real.exists():
        pytest.skip(f"{name} not present")

    def edit(ds):
        _dicom_uids(ds)
        _dicom_software(ds)
    src = pm.dicom_builder(edit, real=real)(tmp_path)
    _run(f"real-{name}", src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ the audit in OUTDIR
def _mrxs_named_sections(folder: Path) -> Path:
    """A MIRAX slide whose level and value groups are named after the patient (the file names them:
    HIER_0_VAL_0_SECTION = <name>); OpenSlide reads it as any other."""
    import re

    from wsideid.mrxs.synth import make_mrxs
    path = folder / "slide.mrxs"
    make_mrxs(str(path), tiles_x=2, tiles_y=2, levels=2)
    ini = path.parent / "slide" / "Slidedat.ini"
    text = ini.read_bytes().decode("utf-8-sig")
    for k, name in enumerate(sorted(set(re.findall(r"= *((?:NONHIER)?LAYER_\d+_(?:LEVEL|VAL)_\d+_SECTION)", text)))):
        text = text.replace(name, f"QUIXOTE_ZEPHYRINA_{k}")
    ini.write_bytes(b"\xef\xbb\xbf" + text.encode())
    return path


def test_mirax_group_names_do_not_reach_the_audit(tmp_path, monkeypatch):
    """The key file's level and value groups are named by the file; their keys are known fields, so
    the audit printed their paths whole: "Slidedat.ini/[QUIXOTE_ZEPHYRINA_0]/OVERLAP_X" in OUTDIR
    (the slide itself was clean: its key file is rebuilt). A group outside 3DHistech's vocabulary
    is named by its kind and order now."""
    src = _mrxs_named_sections(tmp_path)
    outcome, outdir = _run("mrxs-group-names", src, tmp_path, monkeypatch)
    assert outcome == "published"
    audit = next(outdir.glob("*.audit.json")).read_text()
    assert "Slidedat.ini/[<level group 0>]/OVERLAP_X" in audit


# ------------------------------------------------------------------ regression: what did not leak
SWEEP = ["Zephyrina Quixote", "QUIXOTE^ZEPHYRINA", "Quixote", "ZEPHYRINA", "Jane", "DOE JANE", "MRN4477139",
         "4477139", "ZX24-77139", "S24-12345", "S24 12345", "JDOE42", "SN12345", "A12345", "12345678", "1234567",
         "C4477139", "v4477139", "4477-139", "4477 139", "St Elsewhere Hospital", "Mercy", "Dr Who",
         "1987-03-17", "03/17/1987", "17.03.1987", "1987.03.17", "19870317", "17 Mar 1987", "Mar 17 1987",
         "1987/03/17", "1987 03 17", "17031987", "tifffile 17.03.1987", "Philips 1987.03.17"]


def _profile_patterns():
    import re
    import tomllib
    folder = Path(__file__).resolve().parents[1] / "wsideid" / "formats"
    for f in sorted(folder.glob("*.toml")):
        def walk(t, path):
            for k, v in t.items():
                if isinstance(v, dict) and "pattern" in v:
                    yield f"{f.name}:{'/'.join(path + [k])}", re.compile(v["pattern"])
                elif isinstance(v, dict):
                    yield from walk(v, path + [k])
                elif path[-1:] == ["patterns"] and isinstance(v, list):
                    for p in v:
                        yield f"{f.name}:{'/'.join(path + [k])}", re.compile(p)
        yield from walk(tomllib.loads(f.read_text()), [])


def test_no_profile_pattern_keeps_a_planted_value():
    """Every allow-list pattern of every shipped profile, against the values planted in the rounds
    (names, record and accession numbers, institutions, dates in every spelling the parser reads):
    none is kept as it is. Round 6 found "17.03.1987" and "1987.03.17" admitted by the version
    grammars; a kept value spelling a date now fails (``kept_text_holds_date``). Dates with a
    two-digit year ("87.03.17"): round 7 (``test_planted_round7``)."""
    from wsideid.dates import kept_text_holds_date
    kept = [(where, v) for where, rx in _profile_patterns() for v in SWEEP
            if rx.fullmatch(v) and not kept_text_holds_date(v)]
    assert not kept, kept


def _verify(original: Path, output: Path) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        rc = cli.main(["verify", str(original), str(output)])
    return rc, buf.getvalue()


@pytest.mark.parametrize("fmt", ["ndpi", "philips"])
def test_verify_refuses_the_round6_places_put_back(fmt, tmp_path, monkeypatch):
    """`wsideid verify` on a clean published output with a round 6 place written back into it (an
    NDPI key holding a date; a Philips PMSVR free word): never 'verified'. The control (the output
    rewritten unchanged) is."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    (tmp_path / "in").mkdir()
    if fmt == "ndpi":
        src = tmp_path / "in" / "slide.ndpi"
        pc.make_clean_ndpi(src)
    else:
        src = _philips(tmp_path / "in", lambda x: x)
    outdir = tmp_path / "out"
    rc, err = _deid(src, outdir, monkeypatch)
    assert rc == 0, err
    out = outdir / [p for p in published(outdir) if not p.endswith(".json")][0]
    from wsideid.tiff.container import read_tiff
    tf = read_tiff(str(out))
    ctrl, bad = tmp_path / f"control{out.suffix}", tmp_path / f"bad{out.suffix}"
    pc.rewrite_tiff(out, ctrl, {})
    if fmt == "ndpi":
        tag, text = 65449, (tf.ifds[0].text(65449) or "") + "zFine[19870317]=1\r\n"
    else:
        tag, text = 270, (tf.ifds[0].text(270) or "").replace('PMSVR="IUInt16"', 'PMSVR="IZephyrinaQuixote"')
        assert "IZephyrinaQuixote" in text
    pc.rewrite_tiff(out, bad, {0: {tag: pm.ascii_entry(tag, text)}})
    assert _verify(src, ctrl)[0] == 0
    rc, msg = _verify(src, bad)
    assert rc != 0, msg


# ------------------------------------------------------------------ a date as a number, spelled otherwise
@pytest.mark.parametrize("text,holds", [
    ("019870317", True), ("1.9870317e7", True), ("1.9870317E+07", True), ("0.19870317e8", True),
    ("+019870317.0", True), ("198703170e-1", True), ("1,019650704", True),
    ("0.19650704", False), ("2040", False), ("0.5", False), ("1e3", False), ("2.5e-4", False), ("00012345", False),
])
def test_number_holds_date_reads_the_number_not_its_spelling(text, holds):
    """Round 5's rule read 8-digit runs: leading zeros and an exponent spell the same number
    ("019870317", "1.9870317e7" are 19870317) and the value grammars accept both."""
    from wsideid.dates import number_holds_date
    assert number_holds_date(text) is holds


def _svs_numbers(folder: Path) -> Path:
    dst = folder / "slide.svs"
    desc = pc.aperio_description(pc.W, pc.H, None, {"StripeWidth": "019870317", "Left": "1.9870317e7",
                                                    "Top": "0.19870317E8"})
    pc.rewrite_tiff(pm.base("svs", folder), dst, {0: {270: pm.ascii_entry(270, desc)}})
    return dst


def _dicom_number_spellings(ds) -> None:
    ds.InstanceNumber = "019870317"        # IS (Type 1: its neutral value takes its place)


@pytest.mark.parametrize("build", [_svs_numbers, pm.dicom_builder(_dicom_number_spellings)], ids=["aperio", "dicom"])
def test_a_date_as_a_number_with_zeros_or_an_exponent_is_not_kept(build, tmp_path, monkeypatch):
    """Round 5 closed "a number whose integer part is an 8-digit date"; spelled "019870317" or
    "1.9870317e7" the same number parsed as its type and was published."""
    src = build(tmp_path)
    outcome, outdir = _run(f"date-number-spellings-{build.__name__}", src, tmp_path, monkeypatch)
    assert not pc.find_in_tree(outdir, ["9870317e", "9870317E"])
