"""Mutation test of the verifier (issue 10 "Show").

For each class of scrub rule the APPLY step is disabled by monkeypatching
the writer side (the writer is handed copies of the decisions with that
class turned into "keep", or its stripping/removal function is made a no-op)
while the plan that the verifier checks against stays the same. Verification
must then refuse to publish: VerificationFailed (CLI exit 3) and nothing at
the output path. A control run without the mutation publishes, so the refusal
is the mutation's doing. A verifier that cannot fail is no verifier.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest

import phi_corpus as pc
from wsideid import cli
from wsideid.checks import Check
from wsideid.dicom.plan import DicomOptions
from wsideid.dates import make_policy
from wsideid.errors import VerificationFailed
from wsideid.keys import Secret
from wsideid.model import DATE, DATETIME, KEEP, REMOVE, REPLACE, TEXT, TIME
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.tiff_family.vendors import tiff_base

SECRET = Secret(b"verifier-mutation-secret-0123456789", "test")
NEW_ID = "RID-MUT-1"


# --------------------------------------------------------------- slides
@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    from wsideid.synth import make_ndpi, make_svs
    d = tmp_path_factory.mktemp("mutation")
    bases = pc.make_bases(d / "bases")
    out = {"svs": Path(make_svs(str(d / "demo.svs"), width=1024, height=768).path),
           "ndpi": Path(make_ndpi(str(d / "demo.ndpi"), width=1024, height=768).path)}
    for fmt, carrier in (("svs", "aperio_header"), ("svs", "dates_free_text"), ("tiff", "jpeg_segments"),
                         ("svs", "jpeg_segments"), ("ndpi", "ndpi_private")):
        out[f"{fmt}-{carrier}"] = pc.build_tiff_class(fmt, carrier, bases, d / "corpus").path
    return out


@pytest.fixture(scope="module")
def dicom_slide(tmp_path_factory) -> Path:
    pytest.importorskip("wsidicomizer")
    from wsideid.synth import make_dicom
    d = tmp_path_factory.mktemp("mutation-dicom")
    return Path(make_dicom(str(d / "series")).path)


# --------------------------------------------------------------- TIFF-family mutations
def _is_tag(d) -> bool:
    return d.field.subkey is None


def _is_key(d) -> bool:
    return d.field.subkey is not None and d.field.subkey != "@header"


# name -> (selector of decisions whose APPLY is disabled, slide)
DECISION_MUTATIONS = {
    "field-removal-tags": (lambda d: d.action == REMOVE and _is_tag(d), "svs"),
    "field-removal-keys": (lambda d: d.action == REMOVE and _is_key(d), "svs"),
    "field-removal-ndpi-properties": (lambda d: d.action == REMOVE and _is_key(d), "ndpi-ndpi_private"),
    "replace": (lambda d: d.action == REPLACE and d.field.subkey != "@header", "svs"),
    "date-transform": (lambda d: d.action in (DATE, DATETIME, TIME), "svs"),
    "date-transform-beside-free-text": (lambda d: d.action in (DATE, DATETIME, TIME), "svs-dates_free_text"),
    "date-transform-ndpi": (lambda d: d.action in (DATE, DATETIME, TIME), "ndpi"),
    "header-rebuild": (lambda d: d.field.subkey == "@header", "svs-aperio_header"),
    "text-pattern": (lambda d: d.action == TEXT, "svs"),
    # free text with ten date spellings fails its pattern and is removed (the value policy
    # rewrites no free text); the writer keeping it must be caught
    "text-pattern-all-spellings": (lambda d: d.field.key == "tags:Software" and d.action == REMOVE,
                                   "svs-dates_free_text"),
}


# name -> the check (wsideid.checks.Check value) that must report the mutation. A removed field left
# in the output is plan-held's; a value kept unreplaced or undated is found by residual-needles (the
# TIFF plan-held looks for removed fields, not for replaced values); a rebuilt header or a free text
# that fails its pattern is values-pass-policy's.
CAUGHT_BY = {
    "field-removal-tags": "plan-held",
    "field-removal-keys": "plan-held",
    "field-removal-ndpi-properties": "plan-held",
    "replace": "residual-needles",
    "date-transform": "residual-needles",
    "date-transform-beside-free-text": "residual-needles",
    "date-transform-ndpi": "residual-needles",
    "header-rebuild": "values-pass-policy",
    "text-pattern": "residual-needles",
    "text-pattern-all-spellings": "values-pass-policy",
}


def _disable(monkeypatch, select) -> list:
    """The writer gets copies of the decisions with the selected ones kept as they are."""
    real = tiff_base.decisions_by_ifd
    hit: list = []

    def mutated(plan):
        out = {}
        for k, decs in real(plan).items():
            new = []
            for d in decs:
                if select(d) and d.action != KEEP and (d.action == REMOVE or d.new_value != d.field.value):
                    hit.append(d.field.path)
                    d = dataclasses.replace(d, action=KEEP, new_value=None)
                new.append(d)
            out[k] = new
        return out
    monkeypatch.setattr(tiff_base, "decisions_by_ifd", mutated)
    return hit


def _options(dates: str = "remove") -> DeidOptions:
    # under "remove" a date field is simply removed; "shift" makes the date rule write a new value
    return DeidOptions(new_id=NEW_ID, detect="off", dicom=DicomOptions(secret=SECRET),
                       dates=make_policy(dates, SECRET, "subject-1"))


def _expect_refusal(src: Path, outdir: Path, check: str, dates: str = "remove") -> None:
    """Refused, nothing left in OUTDIR, and the failure reported under the vocabulary name ``check``
    (``wsideid.checks.Check``): the check meant to catch this mutation is the one that did."""
    Check(check)  # a name of the vocabulary
    outdir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(VerificationFailed) as err:
        deidentify(src, outdir, _options(dates))
    assert check in err.value.checks, (check, err.value.checks, str(err.value))
    assert not [n for n in os.listdir(outdir)], f"something was left in OUTDIR: {os.listdir(outdir)}"


def _control(src: Path, outdir: Path, dates: str = "remove") -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    res = deidentify(src, outdir, _options(dates))
    assert res.status == "published" and res.report.ok


@pytest.mark.parametrize("name", sorted(DECISION_MUTATIONS))
def test_disabled_scrub_rule_is_caught(name, slides, tmp_path, monkeypatch):
    select, slide = DECISION_MUTATIONS[name]
    src = slides[slide]
    dates = "shift" if name.startswith("date") else "remove"
    _control(src, tmp_path / "control", dates)
    hit = _disable(monkeypatch, select)
    _expect_refusal(src, tmp_path / "out", CAUGHT_BY[name], dates)
    assert hit, f"{name}: the slide has nothing this rule changes (the mutation would be vacuous)"
    assert not [n for n in os.listdir(tmp_path / "out")]


@pytest.mark.parametrize("slide", ["svs", "ndpi"])
def test_label_removal_disabled_is_caught(slide, slides, tmp_path, monkeypatch):
    """The writer keeps the label and macro the plan removes."""
    src = slides[slide]
    _control(src, tmp_path / "control")
    real = tiff_base.build_ifds
    hit = []

    def keep_images(tf, plan, *a, **kw):
        p = copy.copy(plan)
        p.images = [dataclasses.replace(d, action="keep") if d.image.role in ("label", "macro") else d
                    for d in plan.images]
        hit.extend(d.image.role for d in plan.images if d.image.role in ("label", "macro") and d.action != "keep")
        return real(tf, p, *a, **kw)
    monkeypatch.setattr(tiff_base, "build_ifds", keep_images)
    _expect_refusal(src, tmp_path / "out", "roles")
    assert hit


@pytest.mark.parametrize("slide", ["svs-jpeg_segments", "tiff-jpeg_segments", "svs"])
def test_tile_segment_stripping_disabled_is_caught(slide, slides, tmp_path, monkeypatch):
    """Tiles keep their COM/APP1 segments (the stripping edit is not made)."""
    from wsideid.tiff_family import redaction
    src = slides[slide]
    _control(src, tmp_path / "control")
    real = redaction.stripped_segments
    hit = []

    def nothing_stripped(tf, plan, deferred=False):
        e = real(tf, plan, deferred)
        hit.extend(e.tiles)
        hit.extend(e.tiles.pending if deferred else ())
        from wsideid.tiff.edits import EditSet
        return redaction.Edits(EditSet(e.tiles.store))
    monkeypatch.setattr(redaction, "stripped_segments", nothing_stripped)
    # the optimistic write's beside-the-copy check is part of the same rule: disabled too
    from wsideid.tiff import jpegsegs
    monkeypatch.setattr(jpegsegs, "check_pending", lambda path, pending: [])
    _expect_refusal(src, tmp_path / "out", "compressed-streams")
    assert hit


# JPEGTables: the corpus slides carry their tables inline, so that mutation lives beside a slide
# that has JPEGTables: test_jpeg_structure.py::test_jpegtables_cleaning_disabled_is_caught


def test_cli_exit_3_when_removal_disabled(slides, tmp_path, monkeypatch, capsys):
    select, slide = DECISION_MUTATIONS["field-removal-tags"]
    _disable(monkeypatch, select)
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = cli.main(["deid", str(slides[slide]), "-o", str(outdir), "--new-id", NEW_ID, "--detect", "off"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert not os.listdir(outdir)
    assert "verification" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------- DICOM mutations
def _dicom_rebuild_mutation(monkeypatch, kinds: set[str]) -> list:
    """The DICOM writer ignores ops of ``kinds``: removed elements are written, set values stay original."""
    from pydicom.dataset import Dataset

    from wsideid.dicom import apply as dapply
    from wsideid.dicom.plan import tag_name
    hit: list = []

    def rebuild(ds, prefix, ops):
        out = Dataset()
        for elem in ds:
            path = f"{prefix}/{elem.keyword or tag_name(int(elem.tag))}"
            op = ops.get(path)
            if op is not None and op.kind in kinds and elem.keyword not in ("PixelData",):
                if elem.VR != "SQ" or op.kind == "set":
                    hit.append(path)
                    out.add(elem)
                    continue
            if op is None or op.kind == "remove":
                continue
            if op.kind == "keep":
                out.add(elem)
            elif op.kind == "set":
                out.add(dapply.DataElement(elem.tag, dapply._vr_for(elem, op.value),
                                           dapply.Sequence(op.value) if elem.VR == "SQ" else op.value))
            elif op.kind == "walk":
                items = []
                for k, item in enumerate(elem.value or []):
                    ipath = f"{path}[{k}]"
                    if ops.get(ipath) is not None and ops[ipath].kind == "drop-item":
                        continue
                    items.append(rebuild(item, ipath, ops))
                out.add(dapply.DataElement(elem.tag, "SQ", dapply.Sequence(items)))
        return out
    monkeypatch.setattr(dapply, "_rebuild", rebuild)
    return hit


@pytest.mark.parametrize("kinds,check", [(("remove",), "plan-held"), (("set",), "identifiers-replaced")],
                         ids=["attribute-removal", "attribute-clean-replace"])
def test_dicom_rule_disabled_is_caught(kinds, check, dicom_slide, tmp_path, monkeypatch):
    _control(dicom_slide, tmp_path / "control")
    hit = _dicom_rebuild_mutation(monkeypatch, set(kinds))
    _expect_refusal(dicom_slide, tmp_path / "out", check)
    assert hit


def test_dicom_frame_stripping_disabled_is_caught(tmp_path, monkeypatch):
    """DICOM frames keep their COM/APP segments and trailing bytes (issue 11 stream rule disabled)."""
    pytest.importorskip("wsidicomizer")
    try:
        from wsideid.dicom import frames
    except ImportError:
        pytest.fail("no DICOM frame stream rule on this branch: frames are copied unparsed (issue 11)")
    bases = pc.make_bases(tmp_path / "bases")
    base = pc.make_clean_dicom(tmp_path / "dicom-base", bases["svs"])
    src = pc.build_dicom_class("dcm_jpeg_frames", base, tmp_path / "corpus").path
    _control(src, tmp_path / "control")
    hit = []

    def nothing_cleaned(inst, *a, **kw):
        hit.append(inst.index)
        return {}
    monkeypatch.setattr(frames, "rule_edits", nothing_cleaned)
    _expect_refusal(src, tmp_path / "out", "compressed-streams")
    assert hit


# --------------------------------------------------------------- output corrupted after the writer, before verify
def _corrupt_before_verify(monkeypatch, corrupt) -> list:
    """``corrupt(opened, written)`` runs on what the writer left, just before the verifier reads it
    (a bug, or anyone with write access to the output folder, between the two)."""
    from wsideid import pipeline
    real = pipeline._verify
    hit: list = []

    def mutated(driver, opened, plan, written, options):
        hit.append(corrupt(opened, written))
        return real(driver, opened, plan, written, options)
    monkeypatch.setattr(pipeline, "_verify", mutated)
    return hit


def _dicom_files(path: str) -> list[str]:
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".dcm")]
    return [path]


def _swap_in_meta(path: str, old: bytes, new: bytes) -> int:
    """Replace ``old`` by ``new`` (same length) in the file meta group only (the first element
    after the preamble up to the end of group 0002)."""
    import pydicom
    assert len(old) == len(new)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    meta_end = 132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength)
    with open(path, "r+b") as fh:
        head = fh.read(meta_end)
        n = head.count(old)
        fh.seek(0)
        fh.write(head.replace(old, new))
    return n


def test_dicom_output_transfer_syntax_changed_is_caught(dicom_slide, tmp_path, monkeypatch):
    """The output's file meta names JPEG-LS for JPEG baseline frames (same length, one byte):
    the frames, headers and needles are unchanged, but no reader decodes it as the input."""
    _control(dicom_slide, tmp_path / "control")
    hit = _corrupt_before_verify(monkeypatch, lambda opened, written: sum(
        _swap_in_meta(f, b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.80") for f in _dicom_files(written.ready)))
    _expect_refusal(dicom_slide, tmp_path / "out", "reader")
    assert hit and hit[0] > 0


def _corrupt_after_verify(monkeypatch, corrupt) -> list:
    """``corrupt(written)`` runs once the verifier has passed the output, before it is hashed
    and published (a bug, or anyone with write access to the output folder)."""
    from wsideid import pipeline
    real = pipeline._verify
    hit: list = []

    def mutated(driver, opened, plan, written, options):
        report = real(driver, opened, plan, written, options)
        hit.append(corrupt(written))
        return report
    monkeypatch.setattr(pipeline, "_verify", mutated)
    return hit


def _flip_last_byte(path: str) -> str:
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        b = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([b[0] ^ 0xFF]))
    return path


def test_tiff_output_changed_after_verification_is_not_published(slides, tmp_path, monkeypatch):
    """The recorded hash is the file's own, taken from disk once written, and the file must be
    unchanged (stamp) until the rename: a byte changed after verification refuses the slide
    under output-hash. Before, the default recorded the writer's recipe hash and published."""
    _control(slides["svs"], tmp_path / "control")
    hit = _corrupt_after_verify(monkeypatch, lambda written: _flip_last_byte(written.ready))
    _expect_refusal(slides["svs"], tmp_path / "out", "output-hash")
    assert hit


def test_tiff_output_replaced_after_verification_is_not_published(slides, tmp_path, monkeypatch):
    """Another file renamed over the verified one (same bytes even): not the file hashed."""
    import shutil

    def replace(written):
        shutil.copyfile(written.ready, written.ready + ".x")
        os.replace(written.ready + ".x", written.ready)
        return written.ready
    hit = _corrupt_after_verify(monkeypatch, replace)
    _expect_refusal(slides["svs"], tmp_path / "out", "output-hash")
    assert hit


def test_dicom_output_changed_after_verification_is_not_published(dicom_slide, tmp_path, monkeypatch):
    """DICOM instances are stamped once written: one changed after verification is not hashed
    and published as if verified."""
    def one(written):
        inst, path, _ = written.state[0]
        return _flip_last_byte(path)
    hit = _corrupt_after_verify(monkeypatch, one)
    _expect_refusal(dicom_slide, tmp_path / "out", "output-hash")
    assert hit


def test_mirax_output_changed_after_verification_is_not_published(tmp_path, monkeypatch):
    from wsideid.mrxs.synth import make_mrxs
    src = tmp_path / "src" / "case.mrxs"
    src.parent.mkdir()
    make_mrxs(str(src))

    def datafile(written):
        folder = os.path.splitext(written.ready)[0]
        return _flip_last_byte(os.path.join(folder, sorted(n for n in os.listdir(folder) if n.lower().endswith(".dat"))[-1]))
    hit = _corrupt_after_verify(monkeypatch, datafile)
    _expect_refusal(src, tmp_path / "out", "output-hash")
    assert hit


def test_tiff_tile_outside_the_sample_written_wrong_is_caught(slides, tmp_path, monkeypatch):
    """The writer puts a wrong byte in a tile image-data's sample does not read (a copy gone
    wrong): the file's hash is not the plan's, so image-data fails (it compared a sample only)."""
    from wsideid.tiff import writer
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family import verify as tverify
    real = writer.write_tiff
    hit: list = []

    def wrong_tile(src_path, out_path, *a, **kw):
        layout = real(src_path, out_path, *a, **kw)
        out, src = read_tiff(out_path), read_tiff(src_path)
        data = tiff_base.image_data(out.image_ifds()[0], out.byteorder)
        sdata = tiff_base.image_data(src.image_ifds()[0], src.byteorder)

        def tile(path, d, k):
            with open(path, "rb") as fh:
                fh.seek(int(d.src_offsets[k]))
                return fh.read(int(d.src_counts[k]))
        n = len(data.src_offsets)  # a tile copied as it is (not edited by the stream rule), not sampled
        t = next(t for t in range(n) if t not in tverify._sample(n, False)
                 and tile(out_path, data, t) == tile(src_path, sdata, t))
        at = int(data.src_offsets[t]) + int(data.src_counts[t]) // 2
        with open(out_path, "r+b") as fh:
            fh.seek(at)
            b = fh.read(1)
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x01]))
        hit.append(t)
        return layout
    monkeypatch.setattr(writer, "write_tiff", wrong_tile)
    _expect_refusal(slides["svs"], tmp_path / "out", "image-data")
    assert hit


REGION = (256, 192, 320, 256)


def _region_options() -> DeidOptions:
    return dataclasses.replace(_options(), regions=[REGION], fill="black")


def _blank_only(monkeypatch, keep) -> list:
    """The region blanker told to blank only what ``keep(ifd, box)`` returns (a box, or None)."""
    from wsideid.tiff_family import redaction
    real = redaction.blank_ifd
    hit: list = []

    def partial(tf, k, ifd, box, *a, **kw):
        new = keep(ifd, box)
        if new != box:
            hit.append((ifd.path, box, new))
        return 0 if new is None else real(tf, k, ifd, new, *a, **kw)
    monkeypatch.setattr(redaction, "blank_ifd", partial)
    return hit


def _expect_region_refusal(src: Path, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(VerificationFailed) as err:
        deidentify(src, outdir, _region_options())
    assert "regions-blank" in err.value.checks, (err.value.checks, str(err.value))
    assert not os.listdir(outdir)


def test_region_blanked_on_level_0_only_is_caught(slides, tmp_path, monkeypatch):
    """The smaller levels and the thumbnail keep the region's pixels: regions-blank reads the
    region on every image OpenSlide shows (it read the centre of level 0 only)."""
    (tmp_path / "control").mkdir()
    res = deidentify(slides["svs"], tmp_path / "control", _region_options())
    assert res.status == "published" and res.report.result(Check.REGIONS_BLANK).passed
    hit = _blank_only(monkeypatch, lambda ifd, box: box if int(ifd.value(256)) == 1024 else None)
    _expect_region_refusal(slides["svs"], tmp_path / "out")
    assert hit


def test_region_blanked_at_its_centre_only_is_caught(slides, tmp_path, monkeypatch):
    """Only the middle third of the region blanked, on every level: its centre reads flat, its
    edges do not."""
    def middle(ifd, box):
        x, y, w, h = box
        return (x + w // 3, y + h // 3, max(1, w // 3), max(1, h // 3))
    hit = _blank_only(monkeypatch, middle)
    _expect_region_refusal(slides["svs"], tmp_path / "out")
    assert hit


def test_dicom_file_meta_element_added_by_the_writer_is_caught(dicom_slide, tmp_path, monkeypatch):
    """The writer puts a Source Application Entity Title naming a hospital in the file meta
    group (0002) of every instance: plan-held compares the data set, so the meta group must
    be judged too."""
    import pydicom
    from wsideid.dicom import apply as dapply
    real = dapply.write_instance
    hit: list = []

    def with_meta(ds, inst, out_path, *a, **kw):
        real(ds, inst, out_path, *a, **kw)
        out = pydicom.dcmread(out_path)
        out.file_meta.SourceApplicationEntityTitle = "STMARYSPATH"
        out.save_as(out_path, enforce_file_format=True)
        hit.append(out_path)
    monkeypatch.setattr(dapply, "write_instance", with_meta)
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(VerificationFailed) as err:
        deidentify(dicom_slide, outdir, _options())
    assert hit and set(err.value.checks) & {"plan-held", "no-unknown-fields"}, (err.value.checks, str(err.value))
    assert not os.listdir(outdir)


def test_macro_label_left_unblanked_is_caught(slides, tmp_path, monkeypatch):
    """--macro blank-label: a kept macro whose label box the editor did not blank was reported
    "regions-blank: not applicable" (image-data only proves the tiles are the editor's bytes)."""
    opts = DeidOptions(macro="blank-label", detect="off")
    (tmp_path / "control").mkdir()
    res = deidentify(slides["svs"], tmp_path / "control", opts)
    assert res.plan.macro_boxes and res.report.result(Check.REGIONS_BLANK).passed
    hit = _blank_only(monkeypatch, lambda ifd, box: None)
    (tmp_path / "out").mkdir()
    with pytest.raises(VerificationFailed) as err:
        deidentify(slides["svs"], tmp_path / "out", opts)
    assert "regions-blank" in err.value.checks, (err.value.checks, str(err.value))
    assert hit and not os.listdir(tmp_path / "out")


def test_output_changed_after_verification_without_a_hash_is_not_published(slides, tmp_path, monkeypatch):
    """--hash none: the stamps were taken only by the hashers, so nothing checked that the file
    published was the one verified; the run stamps every output itself now."""
    from wsideid.errors import WsideidError
    hit = _corrupt_after_verify(monkeypatch, lambda written: _flip_last_byte(written.ready))
    (tmp_path / "out").mkdir()
    with pytest.raises(WsideidError, match="after it was verified"):
        deidentify(slides["svs"], tmp_path / "out", dataclasses.replace(_options(), hash="none"))
    assert hit and not os.listdir(tmp_path / "out")
