"""Issue 10 "Show": no planted value reaches OUTDIR, in any encoding.

For each format and each carrier class of tests/phi_corpus.py one slide is
de-identified (Python API, detectors off so that the output lands in OUTDIR
and every byte of it is searched; the CLI once per format, detectors on).
Every file in OUTDIR (outputs, audits, summaries) and every file name is
searched for every planted value, its name components of 3+ characters and
every spelling of a planted date, in ASCII, UTF-8, Latin-1 and UTF-16 LE/BE,
Unicode case-folded.

Pass: nothing found; or the slide was refused with a one-line WsideidError,
nothing was published in OUTDIR, and the message itself quotes no PHI
(batch summaries in OUTDIR carry error messages).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import phi_corpus as pc
from wsideid.dicom.plan import DicomOptions
from wsideid.errors import WsideidError
from wsideid.keys import Secret
from wsideid.pipeline import DeidOptions, deidentify

SECRET = Secret(b"phi-corpus-test-secret-0123456789", "test")
TIFF_CASES = [(f, c) for c, fmts in pc.TIFF_CLASSES.items() for f in fmts]
from published_outputs import published as _published


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> dict[str, Path]:
    return pc.make_bases(tmp_path_factory.mktemp("corpus-bases"))


@pytest.fixture(scope="session")
def dicom_base(tmp_path_factory, bases) -> Path:
    pytest.importorskip("wsidicomizer")
    return pc.make_clean_dicom(tmp_path_factory.mktemp("corpus-dicom") / "base", bases["svs"])


def _options(slide: pc.CorpusSlide, detect: str = "off") -> DeidOptions:
    return DeidOptions(new_id=slide.new_id, detect=detect, identifiers=list(slide.identifiers), label=slide.label,
                       ocr=False, dicom=DicomOptions(secret=SECRET) if slide.fmt == "dicom" else None)



def _check_planted(slide: pc.CorpusSlide) -> list[str]:
    """The corpus is only evidence if the PHI really sits in the input."""
    wanted = sorted({v for p in slide.plants for v in p.phi})
    root = slide.path if slide.path.is_dir() else slide.path.parent
    hits = pc.find_in_tree(root, wanted)
    name = slide.path.name
    present = {n for n, where in hits.items() if slide.path.is_dir() or any(w.startswith(name) for w in where)}
    missing = [v for v in wanted if v not in present]
    assert not missing, f"{slide.id}: planted values missing from the input itself: {missing}"
    return pc.needles(slide.plants)


def _assert_no_leak(slide: pc.CorpusSlide, outdir: Path, error: str | None, control: Path | None = None) -> None:
    """``control``: OUTDIR of the clean twin (same pixels, same options, no PHI). A short name part
    that also turns up there is a coincidence in image bytes the tool wrote for both, not a leak."""
    wanted = _check_planted(slide)
    if control is not None:
        chance = set(pc.find_in_tree(control, wanted))
        whole = {v for p in slide.plants for v in p.phi}
        assert not chance & whole, f"clean twin output holds planted values {chance & whole}: corpus bug"
        wanted = [n for n in wanted if n not in chance]
    if error is not None:
        assert "\n" not in error.strip() and error.strip(), f"refusal message is not one line: {error!r}"
        assert not _published(outdir), f"{slide.id} refused but left {_published(outdir)} in OUTDIR"
        in_msg = pc.find_in_bytes(error.encode("utf-8"), wanted)
        assert not in_msg, f"{slide.id}: refusal message quotes PHI {in_msg}: {error}"
    hits = pc.find_in_tree(outdir, wanted)
    assert not hits, f"{slide.id}: planted PHI in OUTDIR: " + "; ".join(
        f"{n!r} in {sorted(set(w))[:3]}" for n, w in sorted(hits.items()))


def _run_api(slide: pc.CorpusSlide, outdir: Path) -> str | None:
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        res = deidentify(slide.path, outdir, _options(slide))
    except WsideidError as exc:
        return str(exc) or type(exc).__name__
    assert res.status == "published", res.status
    return None


_CONTROLS: dict[tuple, Path | None] = {}


def _control(slide: pc.CorpusSlide, clean: Path, root: Path) -> Path | None:
    """De-identify the clean twin once per (format, options); None when it is refused."""
    key = (slide.fmt, slide.new_id, slide.label, tuple(slide.identifiers))
    if key not in _CONTROLS:
        twin = pc.CorpusSlide(slide.fmt, "control", clean, [], list(slide.identifiers), slide.new_id, slide.label)
        out = root / f"control-{len(_CONTROLS)}"
        _CONTROLS[key] = out if _run_api(twin, out) is None else None
    return _CONTROLS[key]


@pytest.fixture(scope="session")
def control_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus-controls")


@pytest.mark.parametrize("fmt,carrier", TIFF_CASES, ids=[f"{f}-{c}" for f, c in TIFF_CASES])
def test_leak_tiff_family(fmt, carrier, bases, tmp_path, control_root):
    slide = pc.build_tiff_class(fmt, carrier, bases, tmp_path / "in")
    outdir = tmp_path / "out"
    error = _run_api(slide, outdir)
    _assert_no_leak(slide, outdir, error, _control(slide, bases[fmt], control_root))


@pytest.mark.parametrize("carrier", pc.DICOM_CLASSES)
def test_leak_dicom(carrier, dicom_base, tmp_path, control_root):
    slide = pc.build_dicom_class(carrier, dicom_base, tmp_path / "in")
    outdir = tmp_path / "out"
    error = _run_api(slide, outdir)
    _assert_no_leak(slide, outdir, error, _control(slide, dicom_base, control_root))


CLI_CASES = [("svs", "aperio_header"), ("ndpi", "ndpi_private"), ("tiff", "image_description"),
             ("dicom", "dcm_repeated_in_kept")]


@pytest.mark.parametrize("fmt,carrier", CLI_CASES, ids=[f"{f}-{c}" for f, c in CLI_CASES])
def test_leak_cli(fmt, carrier, bases, tmp_path, request):
    """The CLI with its defaults (detectors on); exit 0 means published, else refused."""
    if fmt == "dicom":
        slide = pc.build_dicom_class(carrier, request.getfixturevalue("dicom_base"), tmp_path / "in")
    else:
        slide = pc.build_tiff_class(fmt, carrier, bases, tmp_path / "in")
    outdir = tmp_path / "out"
    outdir.mkdir()
    args = [sys.executable, "-m", "wsideid.cli", "deid", str(slide.path), "-o", str(outdir), "--no-ocr"]
    if slide.new_id:
        args += ["--new-id", slide.new_id]
    for ident in slide.identifiers:
        args += ["--identifier", ident]
    env = dict(os.environ, WSIDEID_SECRET="phi-corpus-cli-secret-0123456789abcdef")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:
        _assert_no_leak(slide, outdir, None)
    else:
        assert proc.returncode in (2, 3), proc.stderr
        _assert_no_leak(slide, outdir, proc.stderr.strip() or f"exit {proc.returncode}")


@pytest.mark.parametrize("layout", sorted(pc.ROLE_LAYOUTS))
def test_misread_image_is_not_published(layout, tmp_path):
    """Issue 11 item 1: a label or macro stored like a level is not published as one."""
    import openslide
    import tifffile
    make, ext = pc.ROLE_LAYOUTS[layout]
    src = tmp_path / f"slide{ext}"
    dims = make(src)
    outdir = tmp_path / "out"
    outdir.mkdir()
    try:
        res = deidentify(src, outdir, DeidOptions(new_id=pc.RESEARCH_ID, detect="off"))
    except WsideidError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip()
        assert not _published(outdir)
        return
    with tifffile.TiffFile(res.output) as t:
        shapes = []
        for p in t.pages:
            shapes.append((p.imagewidth, p.imagelength))
            shapes += [(q.imagewidth, q.imagelength) for q in (getattr(p, "pages", None) or [])]  # SubIFDs
    assert dims not in shapes, f"{layout}: the {dims} label/macro was published as an image ({shapes})"
    with openslide.OpenSlide(res.output) as osr:
        assert not {"label", "macro"} & set(osr.associated_images)
        assert dims not in osr.level_dimensions


@pytest.mark.parametrize("fmt", ["svs", "ndpi", "tiff", "dicom"])
def test_dates_under_shift_leave_no_unshifted_copy(fmt, bases, tmp_path, request):
    """Issue 10 item 5: under --dates shift an unshifted copy beside a shifted date reveals the offset."""
    from wsideid.dates import make_policy
    if fmt == "dicom":
        slide = pc.build_dicom_class("dcm_dates", request.getfixturevalue("dicom_base"), tmp_path / "in")
    else:
        slide = pc.build_tiff_class(fmt, "dates_free_text", bases, tmp_path / "in")
    outdir = tmp_path / "out"
    outdir.mkdir()
    opts = _options(slide)
    opts.dates = make_policy("shift", SECRET, "subject-7")
    try:
        deidentify(slide.path, outdir, opts)
        error = None
    except WsideidError as exc:
        error = str(exc)
    _assert_no_leak(slide, outdir, error)


def test_audit_holds_no_input_hash(bases, tmp_path):
    """Issue 10 item 7: the input's sha256 in OUTDIR links the shared file back to the identified source."""
    import hashlib
    outdir = tmp_path / "out"
    outdir.mkdir()
    found = {}
    for fmt, src in sorted(bases.items()):
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        sub = outdir / fmt
        sub.mkdir()
        deidentify(src, sub, DeidOptions(new_id=pc.RESEARCH_ID, detect="off"))
        hits = pc.find_in_tree(sub, [digest, digest.upper()])
        if hits:
            found[fmt] = sorted({w for ws in hits.values() for w in ws})
    assert not found, f"the input's sha256 is in OUTDIR: {found}"


def test_batch_outdir_holds_no_phi(bases, tmp_path):
    """`wsideid run`: OUTDIR (outputs, audits, batch summary) holds no source name,
    no manifest identifier, and no PHI from a slide that was refused."""
    import shutil as _sh
    src_dir = tmp_path / "lab"
    src_dir.mkdir()
    good = src_dir / f"{pc.FILE_STEM}.svs"
    _sh.copyfile(bases["svs"], good)
    bad = src_dir / "SMITH_JOHN_MRN9988776.svs"
    bad.write_bytes(b"II*\0" + b"SMITH^JOHN MRN9988776 " * 20)
    manifest = src_dir / "manifest.csv"
    manifest.write_text("source,new_id,identifiers\n"
                        f"{good.name},RID-B1,{pc.ACC};{pc.NAME}\n"
                        f"{bad.name},RID-B2,MRN9988776\n")
    outdir, review = tmp_path / "out", tmp_path / "review"
    env = dict(os.environ, WSIDEID_SECRET="phi-corpus-batch-secret-0123456789abcdef")
    proc = subprocess.run([sys.executable, "-m", "wsideid.cli", "run", str(manifest), "-o", str(outdir),
                           "--review-dir", str(review), "--no-ocr", "--no-progress"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (outdir / "RID-B1.svs").exists(), proc.stdout + proc.stderr
    wanted = sorted(set(pc.needles([pc.Plant("batch", "source names", "", (pc.FILE_STEM, "SMITH_JOHN_MRN9988776",
                                                                          pc.ACC, pc.NAME, "MRN9988776"))])))
    hits = pc.find_in_tree(outdir, wanted)
    assert not hits, "PHI in the batch OUTDIR: " + "; ".join(f"{n!r} in {sorted(set(w))[:3]}" for n, w in hits.items())


IN_PLACE_CASES = [(f, c) for f, c in TIFF_CASES if c != "file_name"]  # in place keeps the file's name by design


@pytest.mark.parametrize("fmt,carrier", IN_PLACE_CASES, ids=[f"{f}-{c}" for f, c in IN_PLACE_CASES])
def test_leak_in_place(fmt, carrier, bases, tmp_path):
    """--in-place: the rewritten slide (old metadata zeroed, not just unlinked) and its audit hold no PHI."""
    slide = pc.build_tiff_class(fmt, carrier, bases, tmp_path / "in")
    wanted = _check_planted(slide)
    audit = tmp_path / "audit"
    audit.mkdir()
    opts = _options(slide)
    opts.in_place, opts.audit_dir = True, str(audit)
    try:
        deidentify(slide.path, None, opts)
    except WsideidError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip()
        return  # refused: the original stays as it was, nothing was shared
    hits = pc.find_in_tree(slide.path.parent, wanted)
    hits.update(pc.find_in_tree(audit, wanted))
    assert not hits, f"{slide.id} in place: " + "; ".join(f"{n!r} in {sorted(set(w))[:3]}" for n, w in hits.items())


TO_DICOM_CASES = [("svs", "software_host"), ("svs", "kept_keys"), ("svs", "aperio_typed"), ("svs", "icc_text"),
                  ("svs", "file_name"), ("ndpi", "ndpi_private"), ("tiff", "make_model")]


@pytest.mark.parametrize("fmt,carrier", TO_DICOM_CASES, ids=[f"{f}-{c}" for f, c in TO_DICOM_CASES])
def test_leak_to_dicom(fmt, carrier, bases, tmp_path):
    """--to-dicom: TIFF metadata must not reach the DICOM attributes wsidicomizer fills, nor the names."""
    pytest.importorskip("wsidicomizer")
    slide = pc.build_tiff_class(fmt, carrier, bases, tmp_path / "in")
    outdir = tmp_path / "out"
    outdir.mkdir()
    opts = _options(slide)
    opts.dicom = DicomOptions(secret=SECRET, to_dicom=True)
    try:
        deidentify(slide.path, outdir, opts)
        error = None
    except WsideidError as exc:
        error = str(exc) or type(exc).__name__
    _assert_no_leak(slide, outdir, error)


@pytest.mark.parametrize("name", ["wsi2dcm_jpeg2000.dcm", "wsi2dcm_jpeg.dcm",
                                  "mi_multi_frame_jpeg_camelyon_challenge_image.dcm"])
def test_leak_dicom_frames_of_real_files(name, tmp_path):
    """Issue 11 item 2: COM markers in JPEG 2000 and JPEG frames (and bytes after EOI) of real DICOM files."""
    from test_no_false_refusals import TESTDATA
    if TESTDATA is None or not (TESTDATA / "dicom" / name).is_file():
        pytest.skip("../shared/testdata is absent")
    note = f"{pc.NAME2} {pc.MRN_TOKEN}".encode()
    src = tmp_path / "in" / name
    src.parent.mkdir()
    pc.dicom_frames_with_text(TESTDATA / "dicom" / name, src, note)
    slide = pc.CorpusSlide("dicom", "real-frames", src, [pc.Plant("frames", "COM in frames", note.decode(),
                                                                   (pc.NAME2, pc.MRN_TOKEN))])
    outdir = tmp_path / "out"
    _assert_no_leak(slide, outdir, _run_api(slide, outdir))


def test_keep_name_respects_user_identifiers(bases, tmp_path):
    """--keep-name keeps a name the PHI classifier passes (a user name like "jdoe7" does);
    a name holding an identifier the user gave (--identifier) must still not reach OUTDIR."""
    import shutil as _sh
    src = tmp_path / "in" / "jdoe7_slide.svs"
    src.parent.mkdir()
    _sh.copyfile(bases["svs"], src)
    try:
        opts = DeidOptions(keep_name=True, identifiers=["jdoe7"], detect="off")
    except TypeError:
        pytest.fail("no --keep-name on this branch (issue 10 item 6)")
    outdir = tmp_path / "out"
    outdir.mkdir()
    slide = pc.CorpusSlide("svs", "keep_name", src, [pc.Plant("keep_name", "file name", "jdoe7", ("jdoe7",))],
                           ["jdoe7"], None)
    try:
        deidentify(src, outdir, opts)
        error = None
    except WsideidError as exc:
        error = str(exc)
    _assert_no_leak(slide, outdir, error)
