"""Lossless blanking of regions in DICOM WSI frames (encapsulated baseline JPEG).

Real files from ../shared/testdata/dicom (skipped when absent, never copied
into the repository). The multi-level series is built in tmp_path from
wsi2dcm_jpeg.dcm: level 0 is the real file, level 1 (4:2:0 frames, Extended
Offset Table) and a thumbnail (4:2:2, non-empty Basic Offset Table) are
derived from it with Pillow.
"""

from __future__ import annotations

import copy
import io
import shutil
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames

from jpeg_fixtures import check_blank, needs_tools
from test_dicom_fixtures import copy_into, dicom_file, options, output_files, read
from wsideid.cli import main
from wsideid.pipeline import deidentify
from wsideid.errors import MalformedFile
from wsideid.tiff_family.redaction import RedactionError

REGION = (300, 200, 260, 180)  # level-0 pixels of wsi2dcm_jpeg (957 x 715)


def _frames(ds) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _mosaic(ds) -> np.ndarray:
    cols, rows = int(ds.Columns), int(ds.Rows)
    tw, th = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
    across = -(-tw // cols)
    down = -(-th // rows)
    full = np.zeros((down * rows, across * cols, 3), np.uint8)
    for i, f in enumerate(_frames(ds)):
        r, c = divmod(i, across)
        full[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols] = np.asarray(Image.open(io.BytesIO(f)).convert("RGB"))
    return full[:th, :tw]


def _derived(base, img: np.ndarray, tile: tuple[int, int], flavor: str, uid: str, subsampling: int,
             extended: bool):
    ds = copy.deepcopy(base)
    th, tw = img.shape[:2]
    cols, rows = tile
    across, down = -(-tw // cols), -(-th // rows)
    canvas = np.zeros((down * rows, across * cols, 3), np.uint8)
    canvas[:th, :tw] = img
    frames = []
    for r in range(down):
        for c in range(across):
            buf = io.BytesIO()
            Image.fromarray(canvas[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols]).save(
                buf, "JPEG", quality=90, subsampling=subsampling)
            frames.append(buf.getvalue())
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.ImageType = ["DERIVED", "PRIMARY", flavor, "RESAMPLED"]
    ds.Rows, ds.Columns = rows, cols
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = tw, th
    ds.NumberOfFrames = len(frames)
    scale = int(base.TotalPixelMatrixColumns) / tw
    pm = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    pm.PixelSpacing = [f"{float(v) * scale:.8g}" for v in pm.PixelSpacing]
    if extended:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    else:
        ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    return ds


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    """Three instances of one series: the real level 0, a derived level 1 and thumbnail."""
    src = dicom_file("wsi2dcm_jpeg")
    folder = tmp_path_factory.mktemp("series") / "slide-7"
    folder.mkdir()
    shutil.copyfile(src, folder / "level0.dcm")
    base = pydicom.dcmread(src)
    full = Image.fromarray(_mosaic(base))
    half = np.asarray(full.resize((full.width // 2, full.height // 2), Image.LANCZOS))
    thumb = np.asarray(full.resize((full.width // 4, full.height // 4), Image.LANCZOS))
    root = "1.2.826.0.1.3680043.99.2024.7"
    _derived(base, half, (256, 256), "VOLUME", f"{root}.1", 2, True).save_as(folder / "level1.dcm",
                                                                              enforce_file_format=True)
    _derived(base, thumb, (thumb.shape[1], thumb.shape[0]), "THUMBNAIL", f"{root}.2", 1, False).save_as(
        folder / "thumb.dcm", enforce_file_format=True)
    return folder


def _by_type(files: list[Path]) -> dict[str, pydicom.Dataset]:
    out = {}
    for f in files:
        ds = read(f)
        key = ds.ImageType[2] + ("1" if ds.ImageType[2] == "VOLUME" and ds.ImageType[3] == "RESAMPLED" else "")
        out[key] = ds
    return out


def _scaled(region, sx: float, sy: float):
    import math
    x0, y0 = math.floor(region[0] * sx), math.floor(region[1] * sy)
    x1, y1 = math.ceil((region[0] + region[2]) * sx), math.ceil((region[1] + region[3]) * sy)
    return x0, y0, x1 - x0, y1 - y0


def _outside_equal(a: np.ndarray, b: np.ndarray, box, margin: int) -> None:
    x, y, w, h = box
    mask = np.ones(a.shape[:2], bool)
    mask[max(0, y - margin):y + h + margin, max(0, x - margin):x + w + margin] = False
    assert np.array_equal(a[mask], b[mask])


def _inside(b: np.ndarray, box, want: int, tol: int = 6) -> None:
    x, y, w, h = box
    inner = b[y + 2:y + h - 2, x + 2:x + w - 2].astype(int)
    assert inner.size and np.abs(inner - want).max() <= tol


@pytest.fixture(scope="module")
def redacted(series, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    res = deidentify(series, out, options(new_id=None, regions=[REGION], fill="black", detect="off"))
    return series, res


def test_region_blanked_on_every_level(redacted):
    series, res = redacted
    assert res.status == "published" and res.report.ok
    checks = {c.name: c for c in res.report.checks}
    assert checks["regions-blank"].passed and "frame(s) decode" in checks["regions-blank"].detail
    assert "blanked frames" in checks["image-data"].detail
    src, out = _by_type(sorted(series.glob("*.dcm"))), _by_type(output_files(res))
    assert set(out) == {"VOLUME", "VOLUME1", "THUMBNAIL"}
    for key in out:
        a, b = _mosaic(src[key]), _mosaic(out[key])
        s = int(src[key].TotalPixelMatrixColumns) / 957
        box = _scaled(REGION, s, int(src[key].TotalPixelMatrixRows) / 715)
        # Pillow's fancy chroma upsampling reaches one pixel past the MCU-grown box.
        _outside_equal(a, b, box, margin=17)
        _inside(b, box, 0)
        assert not np.array_equal(a, b)
        # Clean Pixel Data is claimed, and the region named, in every instance whose frames were blanked.
        assert "113101" in {i.CodeValue for i in out[key].DeidentificationMethodCodeSequence}
        x, y, w, h = REGION
        assert f"pixel data blanked: region {x},{y},{w},{h} (level-0 px)" in list(out[key].DeidentificationMethod)


def test_no_pixel_claim_without_regions(series, tmp_path):
    res = deidentify(series, tmp_path, options(new_id=None, detect="off"))
    for f in output_files(res):
        ds = read(f)
        assert "113101" not in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
        assert not any("blanked" in v for v in ds.DeidentificationMethod)


def test_outside_identical_through_openslide_and_wsidicom(redacted):
    from wsidicom import WsiDicom
    series, res = redacted
    files = output_files(res)
    vol = next(f for f, ds in zip(files, map(read, files)) if ds.ImageType[2] == "VOLUME"
               and ds.ImageType[3] != "RESAMPLED")
    a, b = openslide.OpenSlide(str(series / "level0.dcm")), openslide.OpenSlide(str(vol))
    try:
        assert a.level_dimensions == b.level_dimensions and b.level_count == 2
        assert "thumbnail" in b.associated_images
        for level in range(b.level_count):
            w, h = a.level_dimensions[level]
            ds = a.level_downsamples[level]
            pa = np.asarray(a.read_region((0, 0), level, (w, h)))[..., :3]
            pb = np.asarray(b.read_region((0, 0), level, (w, h)))[..., :3]
            box = _scaled(REGION, 1 / ds, 1 / ds)
            _outside_equal(pa, pb, box, margin=17)
            _inside(pb, box, 0)
    finally:
        a.close()
        b.close()
    with WsiDicom.open(sorted(series.glob("*.dcm"))) as wa, WsiDicom.open(files) as wb:
        assert [lv.size.to_tuple() for lv in wa.levels] == [lv.size.to_tuple() for lv in wb.levels]
        for level in range(len(wb.levels)):
            size = wa.levels[level].size.to_tuple()
            pa = np.asarray(wa.read_region((0, 0), level, size).convert("RGB"))
            pb = np.asarray(wb.read_region((0, 0), level, size).convert("RGB"))
            box = _scaled(REGION, size[0] / 957, size[1] / 715)
            _outside_equal(pa, pb, box, margin=17)
            _inside(pb, box, 0)


@needs_tools
def test_edited_frames_lossless_outside_the_grown_region(redacted):
    """djpeg -nosmooth (independent decoder): every pixel outside the MCU-grown box keeps its value."""
    series, res = redacted
    src, out = _by_type(sorted(series.glob("*.dcm"))), _by_type(output_files(res))
    mcu = {"VOLUME": (16, 16), "VOLUME1": (16, 16), "THUMBNAIL": (16, 8)}  # wsi2dcm frames are 4:2:0
    edited = 0
    for key, ds in src.items():
        cols, rows = int(ds.Columns), int(ds.Rows)
        across = -(-int(ds.TotalPixelMatrixColumns) // cols)
        box = _scaled(REGION, int(ds.TotalPixelMatrixColumns) / 957, int(ds.TotalPixelMatrixRows) / 715)
        for i, (fa, fb) in enumerate(zip(_frames(ds), _frames(out[key]))):
            if fa == fb:
                continue
            r, c = divmod(i, across)
            lx, ly = box[0] - c * cols, box[1] - r * rows
            local = (max(0, lx), max(0, ly), min(cols, lx + box[2]) - max(0, lx), min(rows, ly + box[3]) - max(0, ly))
            assert not fb.endswith(b"\xff\xd9\0\0")  # one padding byte at most
            check_blank(fa, fb, [local], mcu[key], fill=(0, 0, 0), tol=3)
            edited += 1
    assert edited >= 6


def test_untouched_frames_byte_identical(redacted):
    series, res = redacted
    src, out = _by_type(sorted(series.glob("*.dcm"))), _by_type(output_files(res))
    ds, o = src["VOLUME"], out["VOLUME"]
    fa, fb = _frames(ds), _frames(o)
    assert len(fa) == len(fb) == 12
    changed = [i for i, (x, y) in enumerate(zip(fa, fb)) if x != y]
    # 300..560 x 200..380 touches frames (row 0, cols 1-2) and (row 1, cols 1-2) of 256 px.
    assert changed == [1, 2, 5, 6]
    # Level 1 kept its Extended Offset Table, recomputed for the new frame lengths.
    lv1 = out["VOLUME1"]
    offsets = np.frombuffer(lv1.ExtendedOffsetTable, "<u8").tolist()
    lengths = np.frombuffer(lv1.ExtendedOffsetTableLengths, "<u8").tolist()
    frames = _frames(lv1)
    assert lengths == [len(f) for f in frames]
    assert offsets == [sum(n + 8 for n in lengths[:k]) for k in range(len(lengths))]
    # The thumbnail's non-empty Basic Offset Table was rewritten (one frame: [0]).
    thumb = out["THUMBNAIL"]
    assert thumb.PixelData[:12] == b"\xfe\xff\x00\xe0\x04\x00\x00\x00\x00\x00\x00\x00"
    assert len(_frames(thumb)[0]) % 2 == 0


def test_single_files_rgb_and_flat_frames(tmp_path):
    # Adobe RGB frames (PhotometricInterpretation RGB), a region inside the 16 x 16 matrix.
    (tmp_path / "a").mkdir()
    res = deidentify(dicom_file("openslide-python_boxes_0"), tmp_path / "a",
                     options(regions=[(4, 4, 8, 8)], fill="white", detect="off"))
    assert res.report.ok
    px = np.asarray(Image.open(io.BytesIO(_frames(read(output_files(res)[0]))[0])).convert("RGB"))
    assert (px[4:12, 4:12] >= 250).all()
    # A region covering a whole frame: that frame becomes flat, its neighbours only partly.
    (tmp_path / "b").mkdir()
    src = dicom_file("mi_multi_frame_jpeg_camelyon_challenge_image")
    res = deidentify(src, tmp_path / "b", options(regions=[(256, 0, 256, 300)], fill="gray", detect="off"))
    assert res.report.ok
    fa, fb = _frames(read(src)), _frames(read(output_files(res)[0]))
    assert [i for i, (x, y) in enumerate(zip(fa, fb)) if x != y] == [1, 6]
    flat = np.asarray(Image.open(io.BytesIO(fb[1])).convert("RGB")).astype(int)
    assert np.abs(flat - 128).max() <= 3


def test_jpeg2000_refused_nothing_written(tmp_path):
    folder = copy_into(tmp_path / "j2k", "wsi2dcm_jpeg2000")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RedactionError, match="JPEG 2000.*not baseline JPEG"):
        deidentify(folder, out, options(regions=[(10, 10, 50, 50)], detect="off"))
    assert list(out.iterdir()) == []


def test_native_thumbnail_blanked_in_its_bytes(tmp_path):
    """Native (uncompressed) frames: the fill is written into the frame bytes; every other byte
    of the pixel data is the source's, and the verifier checked it exactly."""
    folder = copy_into(tmp_path / "boxes", "openslide-python_boxes_0", "openslide-python_boxes_1")
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(folder, out, options(regions=[(2, 2, 4, 4)], fill="black", detect="off"))
    assert res.report.ok
    checks = {c.name: c for c in res.report.checks}
    assert "1 native" in checks["regions-blank"].detail
    thumb = next(read(f) for f in output_files(res) if read(f).ImageType[2] == "THUMBNAIL")
    src = pydicom.dcmread(dicom_file("openslide-python_boxes_1"))
    def rgb(ds):  # native RGB, interleaved (read as bytes: pydicom's pixel handlers are not under test)
        return np.frombuffer(ds.PixelData, np.uint8, count=int(ds.Rows) * int(ds.Columns) * 3).reshape(
            int(ds.Rows), int(ds.Columns), 3)
    a = rgb(src).copy()
    b = rgb(thumb)
    assert (b[2:6, 2:6] == 0).all()
    a[2:6, 2:6] = 0
    assert np.array_equal(a, b)  # everything outside the box is the source's, exactly
    assert "113101" in {i.CodeValue for i in thumb.DeidentificationMethodCodeSequence}


def test_verifier_catches_a_native_frame_blanked_wrongly(tmp_path, monkeypatch):
    """A writer that blanks one pixel too many fails regions-blank (its pixel-domain part); nothing is published."""
    from wsideid.dicom import redact
    from wsideid.errors import VerificationFailed
    real = redact.blank_instance

    def sloppy(inst, boxes, fill, out, reencode_j2k=False, reencoded=None):
        wider = [(x, y, w + 1, h) for x, y, w, h in boxes]
        return real(inst, wider if inst.role == "thumbnail" else boxes, fill, out, reencode_j2k, reencoded)
    folder = copy_into(tmp_path / "boxes", "openslide-python_boxes_0", "openslide-python_boxes_1")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(redact, "blank_instance", sloppy)
    # the frame edit records the box it was asked for; the sloppy one differs from it
    monkeypatch.setattr(redact, "FrameEdit", _shrunk_edit(redact.FrameEdit))
    with pytest.raises(VerificationFailed, match="regions-blank"):
        deidentify(folder, out, options(regions=[(2, 2, 4, 4)], detect="off"))
    assert list(out.iterdir()) == []


def _shrunk_edit(cls):
    """FrameEdit recording the box one pixel narrower than the one written (a lying writer)."""
    def make(data, boxes=None, kind="jpeg"):
        boxes = [(x, y, w - 1, h) if kind == "native" else (x, y, w, h) for x, y, w, h in (boxes or [])]
        return cls(data, boxes, kind)
    return make


def test_sparse_and_multi_fragment_frames_refused(tmp_path):
    base = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    sparse = copy.deepcopy(base)
    sparse.DimensionOrganizationType = "TILED_SPARSE"
    split = copy.deepcopy(base)
    split.PixelData = encapsulate([f for f in _frames(base)], fragments_per_frame=2)
    for name, ds, why in [("sparse", sparse, "not TILED_FULL"), ("split", split, "one fragment per frame")]:
        folder = tmp_path / name
        folder.mkdir()
        ds.save_as(folder / "x.dcm", enforce_file_format=True)
        out = tmp_path / f"out-{name}"
        out.mkdir()
        # Split frames are now refused when the file is read (MalformedFile), before redaction.
        with pytest.raises((RedactionError, MalformedFile), match=why):
            deidentify(folder, out, options(regions=[(10, 10, 50, 50)], detect="off"))
        assert list(out.iterdir()) == []


def test_cli_redact_folder(series, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["redact", str(series), "-o", str(out), "--region", "0,0,40,40", "--region", "900,650,57,65",
                 "--fill", "white", "--detect", "off", "--new-id", "slide-7"])
    first = capsys.readouterr()  # its stderr holds the no-secret warning of a run that wrote outputs
    assert code == 0, first
    files = sorted((out / "slide-7").glob("*.dcm"))
    assert len(files) == 3
    j2k = copy_into(tmp_path / "j2k", "wsi2dcm_jpeg2000")
    assert main(["redact", str(j2k), "-o", str(out), "--region", "0,0,40,40"]) == 2
    err = capsys.readouterr().err
    assert "not baseline JPEG" in err and "--reencode-j2k" in err and len(err.strip().splitlines()) == 1


def test_verifier_catches_unblanked_frames(series, tmp_path, monkeypatch):
    """A writer that ignored the edits (old frame bytes written) fails verification; nothing is published."""
    from wsideid.dicom import apply
    from wsideid.dicom.pixels import copy_range
    from wsideid.errors import VerificationFailed
    monkeypatch.setattr(apply, "write_pixels", lambda inst, frames, fh: copy_range(inst.path, inst.span.start,
                                                                                   inst.span.end, fh))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationFailed, match="image-data|regions-blank") as err:
        deidentify(series, out, options(new_id=None, regions=[REGION], detect="off"))
    assert {"image-data", "regions-blank"} & set(err.value.checks)
    assert list(out.iterdir()) == []


def test_frame_edits_are_in_the_frozen_plan(series, tmp_path, monkeypatch):
    """The frames a region changes are decided in planning and recorded in the plan itself
    (``plan.frame_edits``), not on the driver's container data: inspect, the writer and the
    verifier read the same object, and writing decides nothing anew."""
    from wsideid.dicom import redact
    from wsideid.model import FrameEdits
    from wsideid.registry import open_input
    opts = options(new_id=None, regions=[REGION], fill="black", detect="off")
    opened = open_input(str(series))
    plan = opened.driver.plan(opened, opts)
    assert isinstance(plan.frame_edits, FrameEdits) and plan.frame_edits.fill == "black"
    edited = {i: sorted(f) for i, f in plan.frame_edits.frames.items()}
    assert len(edited) == 3 and all(edited.values())  # both levels and the thumbnail
    assert not hasattr(plan.inventory.container, "frame_edits")
    assert not hasattr(plan.inventory.container, "regions")

    def replanned(*a, **k):
        raise AssertionError("frame edits planned again after planning")
    monkeypatch.setattr(redact, "plan_frames", replanned)
    before = {i: {k: e.data for k, e in f.items()} for i, f in plan.frame_edits.frames.items()}
    scratch = tmp_path / "scratch"
    written = opened.driver.write(opened, plan, str(scratch), "slide", opts)
    report = opened.driver.verify(opened, plan, written, opts)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert {i: {k: e.data for k, e in f.items()} for i, f in plan.frame_edits.frames.items()} == before


def test_no_frame_edits_without_regions(series):
    from wsideid.registry import open_input
    opened = open_input(str(series))
    plan = opened.driver.plan(opened, options(new_id=None, detect="off"))
    assert plan.regions == [] and not any(plan.frame_edits.frames.values())


@pytest.mark.parametrize("skip", ["thumbnail", "edge-frame"])
def test_verifier_catches_an_editor_that_leaves_frames_out(series, tmp_path, monkeypatch, skip):
    """The editor's bookkeeping leaves an instance (the thumbnail) or one frame under the region
    out: the frames it did blank read back flat, the others are byte copies, and only the
    coverage part of regions-blank (the output's own tile geometry) sees what is missing."""
    from wsideid.dicom import redact
    from wsideid.errors import VerificationFailed
    real = redact.blank_instance

    def leaves_out(inst, boxes, fill, out, *a, **k):
        if skip == "thumbnail" and inst.role == "thumbnail":
            return 0
        n = real(inst, boxes, fill, out, *a, **k)
        if skip == "edge-frame" and inst.role == "level" and len(out) > 1:
            del out[max(k for k in out if out[k].boxes)]
        return n
    monkeypatch.setattr(redact, "blank_instance", leaves_out)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationFailed, match="regions-blank.*not blanked there") as err:
        deidentify(series, out, options(new_id=None, regions=[REGION], detect="off"))
    assert err.value.checks == ["regions-blank"] or "regions-blank" in err.value.checks
    assert list(out.iterdir()) == []
