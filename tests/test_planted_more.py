"""Planted PHI, second round (attacker audit): places the planted matrix (tests/planted_matrix.py)
does not reach, judged by the same rule (tests/test_planted_matrix.py: refused or flagged with
nothing published, or published with no spelling of the needle anywhere in OUTDIR).

New here: ``--in-place`` runs (the slide is its own output: the whole folder is searched),
duplicate tag entries in one IFD, IFDs reached only from a private or Interoperability
pointer, strip-based full-resolution images, a slide and a batch whose *file names* are the
needle (the published OUTDIR, audit and mapping included), DICOM values that a grammar or
structure might keep (functional groups, dimension labels, code meanings under listed schemes,
an ICC profile, a public element sent as UN), and ``wsideid verify`` on a published output
into which the needle was put back afterwards (the verifier must never say clean).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from test_planted_matrix import input_holds_needle, leaks, run_and_judge, run_cli
from wsideid import cli

SECRET = "planted-more-secret-0123456789abcdef"


# ------------------------------------------------------------------ --in-place
def in_place_builders() -> dict[str, object]:
    """What a copy run already publishes clean, now rewritten in place: the gaps the wipe must
    zero, and the tags, blobs, EXIF and JPEG segments the new IFDs and edited tiles must drop."""
    blobs = {700: lambda s, i: pm.blob_entry(700, pm.XMP, 1), 34675: lambda s, i: pm.blob_entry(34675, pc.icc_profile(pm.NEEDLE)),
             33723: lambda s, i: pm.blob_entry(33723, pm.iptc(), 7), 315: pm._needle_only(315),
             316: pm._needle_only(316), 269: pm._needle_only(269), 285: pm._needle_only(285)}
    out = {}
    for fmt in ("svs", "ndpi", "tiff"):
        out[f"{fmt}-gap-after-last-ifd"] = pm.gap_after_last_ifd(fmt)
        if fmt != "ndpi":
            out[f"{fmt}-gap-after-header"] = pm.gap_after_header(fmt)
            out[f"{fmt}-gap-between-tiles"] = pm.gap_between_tiles(fmt)
        out[f"{fmt}-tags-and-jpeg-segments"] = pm.tiff_with(fmt, "all", blobs, pm.cycling_edit(0))
        out[f"{fmt}-jpegtables"] = pm.tiff_with(fmt, "all", {347: lambda s, i: pm.jpegtables_edit(
            ("com", "app", "after_eoi")[i % 3])(s, i)})
    out["ndpi-private-text-tags"] = pm.tiff_with("ndpi", "all", {t: pm._needle_only(t) for t in pm.NDPI_TEXT})
    return out


IN_PLACE = in_place_builders()


def run_in_place(src: Path, monkeypatch, *extra: str) -> tuple[int, str]:
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "--in-place", *extra])
    return rc, err.getvalue()


@pytest.mark.parametrize("name", list(IN_PLACE))
def test_in_place(name, tmp_path, monkeypatch):
    """Exit 0: no needle left in the slide or beside it (journal, temporary files). A refusal
    leaves one line that quotes nothing; a flag is re-run with --detect off on a fresh copy."""
    for attempt, extra in enumerate(((), ("--detect", "off"))):
        folder = tmp_path / f"run{attempt}"
        folder.mkdir()
        src = IN_PLACE[name](folder)
        assert input_holds_needle(src), f"{name}: the needle is not in the input (builder bug)"
        rc, err = run_in_place(src, monkeypatch, *extra)
        assert "Traceback" not in err and rc != 70, f"{name}: internal error: {err}"
        assert not pc.find_in_bytes(err.encode(), pm.SEARCH), f"{name}: a message quotes the needle: {err}"
        if rc == 0:
            hits = leaks(folder)
            assert not hits, f"{name}: needle left in the in-place output: {sorted(hits)}"
            return
        assert rc in (1, 2, 3), f"{name}: exit {rc}: {err}"
        if rc in (2, 3):
            return


# ------------------------------------------------------------------ TIFF structure
def _patch_entry_tag(path: Path, old: int, new: int, new_type: int | None = None) -> None:
    """Renumber (and optionally retype) the first entry ``old`` of IFD 0 of a classic TIFF in place:
    the way to get two entries of one tag, which no writer makes on purpose."""
    raw = path.read_bytes()
    bo = "<" if raw[:2] == b"II" else ">"
    off = struct.unpack(bo + "I", raw[4:8])[0]
    n = struct.unpack(bo + "H", raw[off:off + 2])[0]
    for k in range(n):
        at = off + 2 + 12 * k
        tag, typ = struct.unpack(bo + "HH", raw[at:at + 4])
        if tag == old:
            with open(path, "r+b") as fh:
                fh.seek(at)
                fh.write(struct.pack(bo + "HH", new, new_type if new_type is not None else typ))
            return
    raise AssertionError(f"tag {old} not in IFD 0")


def duplicate_tag(fmt: str, order: str) -> object:
    """Two ImageDescription entries in IFD 0: the needle in a DocumentName renumbered 270 (before
    the real one), or in a Make renumbered 270 after it; ``-bad-type`` gives the real one a type
    no reader knows, so a reader keeping either entry sees a different value."""
    def build(folder: Path) -> Path:
        src = pm.base(fmt, folder)
        planted = 269 if order.startswith("needle-first") else 271
        dst = folder / f"slide{pm.EXT[fmt]}"
        desc = pm.tag_text(src, 0, 270) or "x"
        pc.rewrite_tiff(src, dst, {0: {planted: pm.ascii_entry(planted, pm.NEEDLE), 270: pm.ascii_entry(270, desc)}})
        _patch_entry_tag(dst, planted, 270)
        if order.endswith("bad-type"):
            _patch_entry_tag(dst, 270, 270, 99)   # the first 270 entry: the needle or the real one
        if order.endswith("bad-second"):          # the second (the real one after the needle)
            _patch_entry_tag(dst, 270, 268, None)
            _patch_entry_tag(dst, 270, 270, 99)
            _patch_entry_tag(dst, 268, 270, None)
        return dst
    return build


def private_pointer(tag: int) -> object:
    """An IFD full of the needle reached only from a private tag (as an IFD offset), or an
    Interoperability IFD (40965) under the EXIF IFD."""
    def build(folder: Path) -> Path:
        from wsideid.tiff.writer import OutIfd
        src = pm.base("tiff", folder)
        ents = {t: pm.ascii_entry(t, pm.NEEDLE) for t in (270, 305, 315)}
        if tag == 40965:
            ents = {1: pm.ascii_entry(1, "R98"), 2: pm.blob_entry(2, pm.NEEDLE.encode()), 4097: pm.ascii_entry(4097, pm.NEEDLE)}
            kids = {34665: [OutIfd({37510: pm.blob_entry(37510, b"ASCII\0\0\0" + b"x"), 42016: pm.ascii_entry(42016, "1")},
                                   None, {40965: [OutIfd(ents)]})]}
        else:
            kids = {tag: [ents]}
        dst = folder / "slide.tiff"
        pc.rewrite_tiff(src, dst, {}, {0: kids})
        return dst
    return build


def strip_pyramid(folder: Path) -> Path:
    """A generic pyramid whose full-resolution image is JPEG strips (not tiles), with the needle in
    every JPEG place of the strips and in the text tags of every IFD."""
    import numpy as np
    import tifffile
    from wsideid.synth import tissue
    base = folder.parent / "matrix-bases" / "clean-strips.tiff"
    if not base.exists():
        base.parent.mkdir(exist_ok=True)
        img = tissue(pc.W, pc.H, 61)
        with tifffile.TiffWriter(base) as tw:
            for k in range(3):
                tw.write(np.ascontiguousarray(img[:: 2 ** k, :: 2 ** k]), rowsperstrip=32, photometric="rgb",
                         compression="jpeg", metadata=None, software="SlideScanner 1.0", subfiletype=1 if k else 0)
    dst = folder / "slide.tiff"
    n = pm.n_ifds(base)
    pc.rewrite_tiff(base, dst, {i: {t: pm.ascii_entry(t, pm.NEEDLE) for t in (269, 285, 315, 316)} for i in range(n)},
                    None, pm.cycling_edit(0))
    return dst


STRUCTURE = [pm.Place("tiff-duplicate-270-needle-first", duplicate_tag("tiff", "needle-first")),
             pm.Place("svs-duplicate-270-needle-last", duplicate_tag("svs", "needle-last")),
             pm.Place("tiff-duplicate-270-needle-first-bad-type", duplicate_tag("tiff", "needle-first-bad-type")),
             pm.Place("svs-duplicate-270-needle-last-bad-type", duplicate_tag("svs", "needle-last-bad-type")),
             pm.Place("tiff-duplicate-270-needle-first-bad-second", duplicate_tag("tiff", "needle-first-bad-second")),
             pm.Place("tiff-ifd-behind-private-tag", private_pointer(65001)),
             pm.Place("tiff-ifd-behind-exif-interop", private_pointer(40965)),
             pm.Place("tiff-strip-pyramid", strip_pyramid)]


@pytest.mark.parametrize("place", STRUCTURE, ids=[p.id for p in STRUCTURE])
def test_tiff_structure(place, tmp_path, monkeypatch):
    src = place.build(tmp_path)
    assert input_holds_needle(src), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


@pytest.mark.parametrize("order", ["needle-first-bad-type", "needle-first-bad-second"])
def test_duplicate_tag_is_refused_whatever_the_type_of_either_entry(order, tmp_path):
    """Two entries of one tag are refused even when one has a type no reader knows: readers
    disagree on which one counts (libtiff takes the first), so neither may decide silently."""
    from wsideid.errors import MalformedFile
    from wsideid.tiff.container import read_tiff
    src = duplicate_tag("tiff", order)(tmp_path)
    with pytest.raises(MalformedFile, match="twice"):
        read_tiff(str(src))


# ------------------------------------------------------------------ file and folder names
def named_single(folder: Path) -> Path:
    """A clean SVS whose file name and parent folder name are the needle (how slides are exported)."""
    d = folder / f"{pm.NAME} {pm.DATE_ISO}"
    d.mkdir()
    dst = d / f"{pm.NAME_DCM}_{pm.ACC}.svs"
    shutil.copyfile(pm.base("svs", folder), dst)
    return dst


def named_batch(folder: Path) -> Path:
    """A folder of slides named after the patient: SVS, NDPI, generic TIFF and a DICOM series
    subfolder (when wsidicomizer can make one), each name holding part of the needle."""
    d = folder / f"cases of {pm.NAME}"
    d.mkdir()
    shutil.copyfile(pm.base("svs", folder), d / f"{pm.NAME_DCM}.svs")
    shutil.copyfile(pm.base("ndpi", folder), d / f"{pm.ACC}.ndpi")
    shutil.copyfile(pm.base("tiff", folder), d / f"{pm.DATE_ISO} {pm.NAME}.tiff")
    try:
        import wsidicomizer  # noqa: F401
    except ImportError:
        return d
    pm.dicom_builder(lambda ds: None)(folder).rename(d / pm.NAME_DCM)
    return d


NAMES = [pm.Place("svs-file-and-folder-names", named_single), pm.Place("batch-file-and-folder-names", named_batch)]


@pytest.mark.parametrize("place", NAMES, ids=[p.id for p in NAMES])
def test_names(place, tmp_path, monkeypatch):
    """Only the slide's *name* is PHI: OUTDIR (slides, audit, mapping, QC files) must not repeat it."""
    src = place.build(tmp_path)
    assert pc.find_in_bytes(str(src).encode(), pm.SEARCH)
    run_and_judge(place, src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ DICOM
def _kept_structures(ds):
    """Values inside what the profile keeps as structure or by grammar: functional groups, the
    dimension and optical path modules, code meanings under listed schemes, ICC profiles, label
    fields; a valid value followed by the needle where a pattern decides."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        shared[0].FrameContentSequence = pm._seq(pm._item(FrameLabel=pm.NEEDLE, FrameComments=pm.NEEDLE))
        shared[0].add_new(0x00209158, "LT", pm.NEEDLE)
    ds.DimensionIndexSequence = pm._seq(pm._item(DimensionDescriptionLabel=f"Row Position In Total Image Pixel "
                                                                          f"Matrix {pm.NAME}"))
    sct = pm._code("414298005", "SCT", pm.NEEDLE)
    op = (ds.get("OpticalPathSequence") or [pm._item()])[0]
    op.OpticalPathDescription = f"Brightfield {pm.NEEDLE}"
    op.ICCProfile = pc.icc_profile(pm.NEEDLE)
    op.IlluminationColorCodeSequence = pm._seq(sct)
    op.LensesCodeSequence = pm._seq(pm._code("A-00118", "SRT", pm.NAME))
    ds.OpticalPathSequence = pm._seq(op)
    ds.ICCProfile = pc.icc_profile(pm.NEEDLE)
    ds.ContainerTypeCodeSequence = pm._seq(pm._code("433466003", "SCT", pm.NEEDLE))
    ds.add_new(0x22000002, "UT", pm.NEEDLE)   # LabelText
    ds.add_new(0x22000005, "LT", pm.ACC)      # BarcodeValue
    ds.ContentSequence = pm._seq(
        pm._item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue=pm.NEEDLE,
                 ConceptNameCodeSequence=pm._seq(pm._code("121106", "DCM", "Comment"))),
        pm._item(RelationshipType="CONTAINS", ValueType="PNAME", PersonName=pm.NAME_DCM,
                 ConceptNameCodeSequence=pm._seq(pm._code("121008", "DCM", "Person Observer Name"))))


def _public_as_un(ds):
    """Public elements (a removed name, a kept manufacturer, a date) sent with VR UN, and private
    dates and times (DT, TM) under an unknown creator."""
    pm._raw(ds, 0x00100010, "UN", pm.NAME_DCM)
    pm._raw(ds, 0x00080070, "UN", f"Aperio {pm.NAME}")
    pm._raw(ds, 0x00081030, "UN", pm.NEEDLE)
    pm._raw(ds, 0x00100030, "UN", pm.DATE_DA)
    block = ds.private_block(0x0009, "QUIXOTE DATES", create=True)
    block.add_new(0x01, "DT", pm.DATE_DA + "102233")
    block.add_new(0x02, "TM", "102233")
    block.add_new(0x03, "DA", pm.DATE_DA)
    block.add_new(0x04, "UN", pm.NEEDLE.encode())


def _extra_fragment(ds):
    """One fragment more than there are frames (after the last frame, the offset table names it not)."""
    from pydicom.encaps import encapsulate, generate_frames
    if "PixelData" not in ds or not ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    nf = int(ds.get("NumberOfFrames", 1))
    frames = [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=nf)]
    note = pm.NEEDLE.encode() + (b" " if len(pm.NEEDLE) % 2 else b"")
    ds.PixelData = encapsulate(frames, has_bot=True) + b"\xfe\xff\x00\xe0" + struct.pack("<I", len(note)) + note


def with_dicomdir(folder: Path) -> Path:
    """The clean series as a PACS/CD export: a DICOMDIR beside the instances naming the patient."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    dst = pm.dicom_builder(lambda ds: None, extra_files=False)(folder)
    d = dst if dst.is_dir() else dst.parent
    rec_p = pm._item(DirectoryRecordType="PATIENT", PatientName=pm.NAME_DCM, PatientID=pm.ACC,
                     PatientBirthDate=pm.DATE_DA)
    rec_s = pm._item(DirectoryRecordType="STUDY", StudyDate=pm.DATE_DA, AccessionNumber=pm.ACC,
                     StudyDescription=pm.NEEDLE)
    dd = pm._item(FileSetID="QUIXOTE", DirectoryRecordSequence=pm._seq(rec_p, rec_s))
    dd.file_meta = FileMetaDataset()
    dd.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dd.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(d / "DICOMDIR", dd, enforce_file_format=True)
    return d


DICOM_MORE = [pm.Place("dicom-kept-structures", pm.dicom_builder(_kept_structures)),
              pm.Place("dicom-public-as-un-private-dates", pm.dicom_builder(_public_as_un)),
              pm.Place("dicom-extra-fragment", pm.dicom_builder(_extra_fragment)),
              pm.Place("dicom-dicomdir-in-folder", with_dicomdir)]


@pytest.mark.parametrize("place", DICOM_MORE, ids=[p.id for p in DICOM_MORE])
def test_dicom_more(place, tmp_path, monkeypatch):
    pytest.importorskip("wsidicomizer")
    src = place.build(tmp_path)
    assert input_holds_needle(src), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


# ------------------------------------------------------------------ the verifier never says clean
@pytest.fixture(scope="module")
def published_tiff(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Per format: an input whose Artist and DocumentName are the needle (so the needle's parts are
    removed values the verifier knows), and its published output."""
    out = {}
    root = tmp_path_factory.mktemp("verify-planted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WSIDEID_SECRET", SECRET)
        for fmt in ("svs", "ndpi", "tiff"):
            d = root / fmt
            d.mkdir()
            src = pm.tiff_with(fmt, "first", {269: pm._needle_only(269), 315: pm._needle_only(315)})(d)
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                rc = cli.main(["deid", str(src), "-o", str(d / "out"), "--detect", "off"])
            assert rc == 0
            o, = [p for p in (d / "out").iterdir() if not p.name.endswith(".json")]
            out[fmt] = (src, o)
    return out


def _last_tile_overwritten(src: Path, dst: Path, text: bytes) -> None:
    """The output copied, then the middle of the last tile of the first IFD overwritten in place
    (same length, same layout: only the bytes tell)."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    shutil.copyfile(src, dst)
    tf = read_tiff(str(dst))
    data = image_data(tf.ifds[0], tf.byteorder)
    off, cnt = int(data.src_offsets[-1]), int(data.src_counts[-1])
    assert cnt > len(text) + 64
    with open(dst, "r+b") as fh:
        fh.seek(off + cnt // 2)
        fh.write(text)


def _mutate(kind: str, out: Path, dst: Path) -> None:
    note = pm.NEEDLE.encode()
    if kind.startswith("tail-"):
        shutil.copyfile(out, dst)
        text = {"tail-ascii": note, "tail-utf16": pm.NAME.upper().encode("utf-16-le"),
                "tail-date-spelling": b"born 03/17/1987", "tail-name-only": b"QUIXOTE"}[kind]
        pm.append_bytes(dst, b"\0" + text)
        return
    if kind == "tile-bytes-overwritten":
        _last_tile_overwritten(out, dst, note)
        return
    ov: dict = {}
    children = None
    edit = None
    if kind == "artist-tag":
        ov = {0: {315: pm.ascii_entry(315, pm.NEEDLE)}}
    elif kind == "unknown-tag-last-ifd":
        ov = {pm.n_ifds(out) - 1: {65000: pm.ascii_entry(65000, pm.NEEDLE)}}
    elif kind == "kept-software-with-name":
        ov = {0: {305: pm._keep_then(305)(out, 0)}}
    elif kind == "kept-description-with-name":
        ov = {0: {270: pm._keep_then(270, "|Title = " if out.suffix == ".svs" else " ")(out, 0)}}
    elif kind == "xmp":
        ov = {0: {700: pm.blob_entry(700, pm.XMP, 1)}}
    elif kind == "exif-usercomment":
        children = pm.exif_children(37510, "usercomment")
    elif kind in ("tile-com", "tile-app1", "tile-after-eoi", "tile-before-sos"):
        how = {"tile-com": "com", "tile-app1": "app1", "tile-after-eoi": "after_eoi", "tile-before-sos": "before_sos"}[kind]
        edit = pm.tile_edit_for("0", how)
    elif kind == "jpegtables-com":
        e = pm.jpegtables_edit("com")(out, 0)
        ov = {0: {347: e}} if e is not None else {}
    if edit is not None and out.suffix == ".ndpi":
        pm.shift_mcu_starts(out, ov, edit)
    pc.rewrite_tiff(out, dst, ov, children, edit)


MUTATIONS = ("tail-ascii", "tail-utf16", "tail-date-spelling", "tail-name-only", "tile-bytes-overwritten",
             "artist-tag", "unknown-tag-last-ifd", "kept-software-with-name", "kept-description-with-name",
             "xmp", "exif-usercomment", "tile-com", "tile-app1", "tile-after-eoi", "tile-before-sos", "jpegtables-com")


def run_verify(original: Path, output: Path) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        rc = cli.main(["verify", str(original), str(output)])
    return rc, buf.getvalue()


@pytest.mark.parametrize("fmt", ["svs", "ndpi", "tiff"])
def test_verify_refuses_a_published_output_with_the_needle_put_back(fmt, published_tiff, tmp_path, monkeypatch):
    """`wsideid verify ORIGINAL OUTPUT` on the published output with the needle (or a part or
    another spelling of it) put back in every place: never 'verified'. The control (the output
    rewritten with nothing added) is verified, so each failure is the needle's doing."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    src, out = published_tiff[fmt]
    ctrl = tmp_path / f"control{out.suffix}"
    pc.rewrite_tiff(out, ctrl, {})
    rc, text = run_verify(src, ctrl)
    assert rc == 0, f"{fmt}: the control is not verified: {text}"
    said_clean = []
    for kind in MUTATIONS:
        dst = tmp_path / f"{kind}{out.suffix}"
        _mutate(kind, out, dst)
        if not pc.find_in_bytes(dst.read_bytes(), pm.SEARCH + ["QUIXOTE"]):
            continue  # (a place this format has not: JPEGTables of an NDPI)
        rc, text = run_verify(src, dst)
        assert "Traceback" not in text and rc != 70, f"{fmt}/{kind}: {text}"
        if rc == 0:
            said_clean.append(kind)
    assert not said_clean, f"{fmt}: verify said clean with the needle in: {said_clean}"


OTHER = "Wilhelmina Fothergill MRN 5566778"   # a name the original never held: no removed value spells it


@pytest.mark.parametrize("fmt", ["svs", "ndpi", "tiff"])
def test_verify_refuses_a_field_the_original_did_not_have(fmt, published_tiff, tmp_path, monkeypatch):
    """A field the profile removes, present in the output but absent from the original (an
    ImageDescription on an IFD that had none, a Title key added to an Aperio description), holding
    a name that is no removed value: the source's plan never saw it, so only the output's own
    re-plan can; verify must not say clean."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    src, out = published_tiff[fmt]
    said_clean = []
    for i in range(pm.n_ifds(out)):
        old = pm.tag_text(out, i, 270)
        dst = tmp_path / f"ifd{i}{out.suffix}"
        pc.rewrite_tiff(out, dst, {i: {270: pm.ascii_entry(270, (old + "|Title = " if old else "") + OTHER)}})
        rc, text = run_verify(src, dst)
        assert "Traceback" not in text and rc != 70, text
        if rc == 0:
            said_clean.append(i)
    assert not said_clean, f"{fmt}: verify said clean with a new field holding a name on IFD(s) {said_clean}"


@pytest.mark.parametrize("fmt", ["svs", "ndpi", "tiff"])
def test_verify_refuses_text_outside_the_structure(fmt, published_tiff, tmp_path, monkeypatch):
    """A name that is no removed value, after the last byte of the output or in its unreferenced
    gaps (between values, IFDs and tiles): no reader shows it, the needle scan cannot know it, and
    still it leaves with the file; verify must not say clean."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    src, out = published_tiff[fmt]
    tail = tmp_path / f"tail{out.suffix}"
    shutil.copyfile(out, tail)
    pm.append_bytes(tail, b"\0" + OTHER.encode())
    cases = [tail]
    if fmt != "ndpi":  # (the NDPI writer leaves no gap to write into)
        slack = tmp_path / f"slack{out.suffix}"
        shutil.copyfile(out, slack)
        pc.plant_slack(slack, OTHER.encode() + b" ")
        cases.append(slack)
    for dst in cases:
        rc, text = run_verify(src, dst)
        assert "Traceback" not in text and rc != 70, text
        assert rc == 3, f"{fmt}: verify said clean with a name in {dst.stem}: {text}"


@pytest.fixture(scope="module")
def published_dicom(tmp_path_factory) -> tuple[Path, Path]:
    """A DICOM series whose persons are the needle, and its published output folder."""
    pytest.importorskip("wsidicomizer")
    root = tmp_path_factory.mktemp("verify-dicom")
    src = pm.dicom_builder(pm._pn)(root)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        mp.setenv("WSIDEID_SECRET", SECRET)
        rc = cli.main(["deid", str(src), "-o", str(root / "out"), "--detect", "off"])
    assert rc == 0
    out, = [p for p in (root / "out").iterdir() if p.is_dir()]
    return src, out


def _dicom_edit(kind: str, folder: Path) -> None:
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    files = sorted(p for p in folder.iterdir() if p.suffix == ".dcm")
    note = OTHER.encode() + b" "
    if kind == "preamble":
        raw = bytearray(files[0].read_bytes())
        raw[:len(note)] = note
        files[0].write_bytes(bytes(raw))
        return
    ds = pydicom.dcmread(files[-1])
    if kind == "trailing-padding":
        ds.add_new(0xFFFCFFFC, "OB", note)
    elif kind == "frame-com":
        nf = int(ds.get("NumberOfFrames", 1))
        frames = [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=nf)]
        frames[-1] = pm.insert_after_soi(frames[-1].rstrip(b"\0"), pm.com(note))
        ds.PixelData = encapsulate([f + (b"\0" if len(f) % 2 else b"") for f in frames])
    ds.save_as(files[-1])


@pytest.mark.parametrize("kind", ["preamble", "trailing-padding", "frame-com"])
def test_verify_refuses_a_dicom_output_with_a_name_added(kind, published_dicom, tmp_path, monkeypatch):
    """A name that is no removed value, in the preamble, after the pixel data (as a Data Set
    Trailing Padding element), in a frame's COM segment: verify must not say clean (the control
    copy is verified). (An added element, raw trailing bytes and a file beside the instances are
    caught by the header comparison, dciodvfy and the roles check.)"""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    src, out = published_dicom
    ctrl = tmp_path / "control"
    shutil.copytree(out, ctrl)
    dst = tmp_path / kind
    shutil.copytree(out, dst)
    _dicom_edit(kind, dst)
    rc, text = run_verify(src, dst)
    assert "Traceback" not in text and rc != 70, text
    assert rc == 3, f"verify said clean with a name added ({kind}): {text}"
    if kind == "preamble":
        rc, text = run_verify(src, ctrl)
        assert rc == 0, f"the control is not verified: {text}"


@pytest.mark.parametrize("where", ["after-last-record", "between-records", "index-tail", "ini-comment", "mrxs-file"])
def test_mirax_writer_leaving_text_outside_the_records_is_caught(where, tmp_path, monkeypatch):
    """Mutation: the MIRAX writer leaves a name (no removed value) after the last record of the
    data file, over the gap it opens between two records, after the index, in a key file comment
    or in the .mrxs file; the check before
    publishing must refuse (the residual scan reads only headers and records, and knows only the
    source's removed values)."""
    from wsideid.mrxs import write as mrxs_write
    src = pm.mrxs_place("none")(tmp_path)
    real = mrxs_write.write

    def leaky(plan, out_mrxs, *a, **kw):
        written = real(plan, out_mrxs, *a, **kw)
        folder = Path(out_mrxs).with_suffix("")
        note = OTHER.encode()
        if where == "index-tail":
            pm.append_bytes(folder / "Index.dat", note)
        elif where == "ini-comment":
            pm.append_bytes(folder / "Slidedat.ini", b"# " + note + b"\r\n")
        elif where == "mrxs-file":
            pm.append_bytes(Path(out_mrxs), note)
        elif where == "after-last-record":
            pm.append_bytes(folder / "Data0000.dat", note)
        else:  # the last record moved to the end, the name where it was
            last = max((r for r in written.expected if r.fileno == 0), key=lambda r: r.offset)
            data = folder / "Data0000.dat"
            raw = bytearray(data.read_bytes())
            body = bytes(raw[last.offset:last.offset + last.length])
            raw[last.offset:last.offset + len(note)] = note
            data.write_bytes(bytes(raw) + body)
            moved = type(last)(last.fileno, len(raw), last.length, last.image)
            written.expected[moved] = written.expected.pop(last)
            idx = folder / "Index.dat"
            levels = [[moved if r == last else r for r in lv] for lv in written.levels]
            written.levels[:] = levels
            written.nonhier[:] = [(nh, moved if r == last else r) for nh, r in written.nonhier]
            idx.write_bytes(mrxs_write.build_index(written.slide_id, written.levels, [r for _, r in written.nonhier]))
        return written
    monkeypatch.setattr(mrxs_write, "write", leaky)
    rc, err = run_cli(src, tmp_path / "out", monkeypatch, "--detect", "off")
    assert "Traceback" not in err and rc != 70, err
    assert rc == 3, f"{where}: published with a name outside the records (exit {rc}): {err}"


XML_VENDORS = {"philips": (lambda p: __import__("wsideid.synth_philips").synth_philips.make_philips_tiff(p, 512, 512), ".tiff"),
               "scn": (lambda p: __import__("wsideid.synth_vendors").synth_vendors.make_scn(p, 512, 384), ".scn"),
               "qptiff": (lambda p: __import__("wsideid.synth_qptiff").synth_qptiff.make_qptiff(
                   p, fluorescence=False, width=512, height=384), ".qptiff")}


@pytest.mark.parametrize("vendor", list(XML_VENDORS))
def test_verify_refuses_a_comment_in_an_output_xml(vendor, tmp_path, monkeypatch):
    """A published vendor XML with a comment (or a processing instruction) holding a name that is
    no removed value: the parser drops comments, so the re-planned items never show it, yet it
    leaves with the file; verify must not say clean. The unchanged output is verified."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    make, ext = XML_VENDORS[vendor]
    src = tmp_path / f"slide{ext}"
    make(str(src))
    rc, err = run_cli(src, tmp_path / "out", monkeypatch, "--detect", "off")
    assert rc == 0, err
    out, = [p for p in (tmp_path / "out").iterdir() if not p.name.endswith(".json")]
    assert run_verify(src, out)[0] == 0
    xml = pm.tag_text(out, 0, 270)
    end = xml.rstrip().rfind("</")
    for k, extra in enumerate((f"<!-- {OTHER} -->", f"<?note {OTHER}?>")):
        dst = tmp_path / f"x{k}{ext}"
        pc.rewrite_tiff(out, dst, {0: {270: pm.ascii_entry(270, xml[:end] + extra + xml[end:])}})
        rc, text = run_verify(src, dst)
        assert "Traceback" not in text and rc != 70, text
        assert rc == 3, f"{vendor}: verify said clean with {extra[:4]}... in the XML: {text}"
