"""Blanking wherever a DICOM slide allows it (issue 15 item 5).

(a) ``--macro blank-label`` keeps the OVERVIEW with its label area blanked
(the synthetic series made by ``wsideid.synth.make_dicom``, its Manufacturer
set to Aperio, whose overview layout the label locator knows), or removes it
and says why; (b) native frames blanked in their bytes; (c) JPEG 2000 frames
re-encoded reversibly with ``--reencode-j2k`` (synthetic overview re-encoded
as J2K, and the real wsi2dcm_jpeg2000.dcm when ../shared/testdata is there).
Every output passed the verifier; these tests read the pixels back themselves.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian

from test_dicom_fixtures import copy_into, dicom_file, options, output_files, read
from wsideid.errors import VerificationFailed
from wsideid.pipeline import deidentify
from wsideid.tiff_family.redaction import RedactionError

pytest.importorskip("wsidicomizer")

LABEL_RIGHT = 400  # the synthetic overview's label spans x 0..400 of 1200 (wsideid.synth.make_svs)


def _flavor(ds) -> str:
    return str(ds.ImageType[2])


def _frame0(ds) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _pixels(ds) -> np.ndarray:
    ts = str(ds.file_meta.TransferSyntaxUID)
    if ts in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"):
        return np.asarray(imagecodecs.jpeg2k_decode(_frame0(ds)))
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        return np.frombuffer(ds.PixelData, np.uint8).reshape(int(ds.Rows), int(ds.Columns), 3)
    return np.asarray(Image.open(io.BytesIO(_frame0(ds))).convert("RGB"))


@pytest.fixture(scope="module")
def aperio_series(tmp_path_factory) -> Path:
    from wsideid.synth import make_dicom
    folder = tmp_path_factory.mktemp("ov") / "case-ov"
    make_dicom(str(folder))
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.Manufacturer = "Aperio"  # the converted SVS's scanner: its overview layout is known
        ds.save_as(f)
    return folder


def _variant(src: Path, dst: Path, change, flavor: str = "OVERVIEW") -> Path:
    """A copy of the series whose OVERVIEW (or ``flavor``) instance is rewritten by ``change(ds, rgb)``."""
    shutil.copytree(src, dst)
    for f in dst.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        if _flavor(ds) == flavor:
            change(ds, _pixels(ds))
            ds.save_as(f, enforce_file_format=True)
    return dst


def _as_native(ds, rgb) -> None:
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.PixelData = rgb.astype(np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"


def _as_j2k(ds, rgb) -> None:
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.91"
    ds.PhotometricInterpretation = "RGB"
    ds.PixelData = encapsulate([imagecodecs.jpeg2k_encode(rgb, level=0, codecformat="J2K", mct=False)])
    ds["PixelData"].VR = "OB"


def _overview(res):
    return next(read(f) for f in output_files(res) if _flavor(read(f)) == "OVERVIEW")


def _source_overview(folder: Path):
    return next(read(f) for f in folder.glob("*.dcm") if _flavor(read(f)) == "OVERVIEW")


def _run(folder: Path, out: Path, **kw):
    out.mkdir()
    return deidentify(folder, out, options(new_id="OV-1", macro="blank-label", **kw))


def test_overview_kept_with_its_label_blanked(aperio_series, tmp_path):
    import zxingcpp
    res = _run(aperio_series, tmp_path / "out", detect="residual")
    assert res.status == "published" and res.report.ok  # the residual detectors found nothing on it
    d = next(d for d in res.plan.images if d.image.role == "overview")
    assert d.action == "blank-label" and "label area 0,0," in d.rule
    (index, (x, y, w, h)), = res.plan.macro_boxes
    assert x == 0 and y == 0 and w >= LABEL_RIGHT and h == 400  # the vendor default grown to the barcode
    checks = {c.name: c for c in res.report.checks}
    assert checks["regions-blank"].ok and "1 frame(s) decode to the fill" in checks["regions-blank"].detail
    src, out = _pixels(_source_overview(aperio_series)).astype(int), _pixels(_overview(res)).astype(int)
    assert np.abs(out[:, :LABEL_RIGHT] - 255).max() <= 6  # the whole label area: white
    grown = -(-(x + w) // 16) * 16 + 1  # MCU-grown box, one px of chroma upsampling
    assert np.array_equal(src[:, grown:], out[:, grown:])  # the tissue part: the same pixels
    assert not zxingcpp.read_barcodes(out.astype(np.uint8))  # the DataMatrix is gone
    ds = _overview(res)
    assert "113101" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert any(v.startswith("pixel data blanked: label area 0,0,") for v in ds.DeidentificationMethod)
    audit = json.loads(Path(res.audit_path).read_text())
    assert audit["options"]["overview_label_blanked"] == {str(index): [x, y, w, h]}


def test_overview_barcodes_decoded_once_per_image(aperio_series, tmp_path, monkeypatch):
    """The source overview's codes are decoded once, to place its label, and handed to the source
    scan (they were decoded again there); the blanked output overview is a different image and is
    decoded by the residual scan. The source scan still reports the code it did not decode."""
    from wsideid.detect import barcodes
    calls = []
    real = barcodes.read_barcodes
    monkeypatch.setattr(barcodes, "read_barcodes", lambda image, **kw: calls.append(image.size) or real(image, **kw))
    res = _run(aperio_series, tmp_path / "out", detect="all", ocr=False)
    assert res.status == "published" and res.report.ok
    assert calls.count((1200, 400)) == 2, calls  # the source overview once, the blanked output once
    scan = next(s for s in res.scans if s.role == "overview" and s.stage == "source")
    assert [f.kind for f in scan.result.findings] == ["barcode"] and scan.result.has_phi


@pytest.mark.parametrize("maker", ["Acme", "Aperiodic Imaging", "Leica Microsystems", "Not Hamamatsu"])
def test_unknown_vendor_removes_the_overview_and_says_why(aperio_series, tmp_path, maker):
    """Manufacturer is matched as a whole name (normalised), not as a substring: a maker whose
    name holds a known vendor's word was taken for Aperio's or Hamamatsu's layout; removed now."""
    folder = tmp_path / "maker"
    shutil.copytree(aperio_series, folder)
    for f in folder.glob("*.dcm"):  # every instance: a series has one Manufacturer
        ds = pydicom.dcmread(f)
        ds.Manufacturer = maker
        ds.save_as(f)
    res = _run(folder, tmp_path / "out", detect="off")
    d = next(d for d in res.plan.images if d.image.role == "overview")
    assert d.action == "remove" and "no vendor layout for this Manufacturer" in d.rule
    assert "OVERVIEW" not in {_flavor(read(f)) for f in output_files(res)}


@pytest.mark.parametrize("maker", ["Leica Biosystems", "HAMAMATSU PHOTONICS K.K.", " aperio "])
def test_vendor_names_normalised(maker):
    from types import SimpleNamespace

    from wsideid.dicom.overview import overview_vendor
    ds = pydicom.Dataset()
    ds.Manufacturer = maker
    assert overview_vendor(SimpleNamespace(ds=ds)) == ("hamamatsu" if "HAMA" in maker else "aperio")


def _portrait(ds, rgb) -> None:
    """The overview turned a quarter: 400 x 1200, not a slide overview's shape."""
    turned = np.ascontiguousarray(np.rot90(rgb))
    buf = io.BytesIO()
    Image.fromarray(turned).save(buf, "JPEG", quality=90)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds.Rows, ds.Columns = turned.shape[:2]
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = turned.shape[:2]
    ds.PhotometricInterpretation = "YBR_FULL_422"


def test_overview_not_shaped_like_one_is_removed_and_says_why(aperio_series, tmp_path):
    """A known vendor's overview of another shape (here portrait) is not where its label place was
    measured: removed (fail closed) with the shape in the reason, never blanked at a guessed place."""
    folder = _variant(aperio_series, tmp_path / "portrait", _portrait)
    res = _run(folder, tmp_path / "out", detect="off")
    d = next(d for d in res.plan.images if d.image.role == "overview")
    assert d.action == "remove" and "400x1200 px is not shaped like a slide overview" in d.rule, d.rule
    assert not res.plan.macro_boxes
    assert "OVERVIEW" not in {_flavor(read(f)) for f in output_files(res)}


def test_native_overview_blanked_exactly(aperio_series, tmp_path):
    """(b) Native frames: the fill written into the bytes; every other pixel exactly the source's."""
    folder = _variant(aperio_series, tmp_path / "native", _as_native)
    res = _run(folder, tmp_path / "out", detect="off")
    assert res.report.ok
    checks = {c.name: c for c in res.report.checks}
    assert "1 native" in checks["regions-blank"].detail
    (_, (x, y, w, h)), = res.plan.macro_boxes
    src, out = _pixels(_source_overview(folder)), _pixels(_overview(res))
    assert (out[y:y + h, x:x + w] == 255).all()
    want = src.copy()
    want[y:y + h, x:x + w] = 255
    assert np.array_equal(out, want)


def test_j2k_overview_needs_reencode_then_is_blanked_exactly(aperio_series, tmp_path):
    """(a)+(c) A JPEG 2000 overview: removed (fail closed, naming --reencode-j2k) without the
    option; with it, re-encoded reversibly and equal to the source with the label filled."""
    folder = _variant(aperio_series, tmp_path / "j2k", _as_j2k)
    res = _run(folder, tmp_path / "out1", detect="off")
    d = next(d for d in res.plan.images if d.image.role == "overview")
    assert d.action == "remove" and "cannot be blanked losslessly" in d.rule and "--reencode-j2k" in d.rule
    res = _run(folder, tmp_path / "out2", detect="off", reencode_j2k=True)
    assert res.report.ok
    checks = {c.name: c for c in res.report.checks}
    assert "1 re-encoded JPEG 2000" in checks["regions-blank"].detail
    (index, (x, y, w, h)), = res.plan.macro_boxes
    assert res.plan.options["reencoded_j2k_frames"] == {str(index): [1]}
    src, out = _pixels(_source_overview(folder)), _pixels(_overview(res))
    want = src.copy()
    want[y:y + h, x:x + w] = 255
    assert np.array_equal(out, want)


def test_j2k_frame_reencoded_once_for_all_its_boxes(aperio_series, tmp_path, monkeypatch):
    """Two regions on the one frame of a JPEG 2000 thumbnail: the frame is decoded and encoded
    once, with both boxes (it was re-encoded once per box), and equals the source with both filled."""
    from wsideid.jpeg import reencode
    calls = []
    real = reencode.reencode_j2k
    monkeypatch.setattr(reencode, "reencode_j2k",
                        lambda cs, boxes, values: calls.append(list(boxes)) or real(cs, boxes, values))
    folder = _variant(aperio_series, tmp_path / "j2k", _as_j2k, "THUMBNAIL")
    out = tmp_path / "out"
    out.mkdir()
    regions = [(0, 0, 100, 100), (400, 300, 200, 100)]  # level 0 is 1024 x 768, the thumbnail 256 x 192
    res = deidentify(folder, out, options(new_id="OV-2", regions=regions, detect="off", reencode_j2k=True))
    assert res.report.ok
    assert calls == [[(0, 0, 25, 25), (100, 75, 50, 25)]]
    thumb = lambda fs: next(read(f) for f in fs if _flavor(read(f)) == "THUMBNAIL")  # noqa: E731
    want = _pixels(thumb(folder.glob("*.dcm"))).copy()
    for x, y, w, h in calls[0]:
        want[y:y + h, x:x + w] = 255
    assert np.array_equal(_pixels(thumb(output_files(res))), want)


def test_verifier_catches_an_overview_left_unblanked(aperio_series, tmp_path, monkeypatch):
    from wsideid.dicom import apply
    from wsideid.dicom.pixels import copy_range
    monkeypatch.setattr(apply, "write_pixels", lambda inst, frames, fh: copy_range(inst.path, inst.span.start,
                                                                                   inst.span.end, fh))
    with pytest.raises(VerificationFailed, match="image-data|regions-blank"):
        _run(aperio_series, tmp_path / "out", detect="off")
    assert list((tmp_path / "out").iterdir()) == []


# -- (c) JPEG 2000 frames of a real DICOM file ------------------------------------------------

REGION = (300, 200, 260, 180)


def _all_frames(ds) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))


def _mosaic(ds) -> np.ndarray:
    cols, rows, across = int(ds.Columns), int(ds.Rows), -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
    down = -(-int(ds.TotalPixelMatrixRows) // rows)
    full = np.zeros((down * rows, across * cols, 3), np.uint8)
    for i, f in enumerate(_all_frames(ds)):
        r, c = divmod(i, across)
        full[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols] = imagecodecs.jpeg2k_decode(f)
    return full


def test_real_j2k_frames_reencoded_only_where_touched(tmp_path):
    from wsideid.jpeg import j2k
    folder = copy_into(tmp_path / "j2k", "wsi2dcm_jpeg2000")
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(folder, out, options(regions=[REGION], fill="black", detect="off", reencode_j2k=True,
                                          verify="full"))
    assert res.report.ok
    assert res.plan.options["reencoded_j2k_frames"] == {"0": [2, 3, 6, 7]}
    src, dst = read(folder / "wsi2dcm_jpeg2000.dcm"), read(output_files(res)[0])
    fa, fb = _all_frames(src), _all_frames(dst)
    for k, (a, b) in enumerate(zip(fa, fb)):
        if k in (1, 2, 5, 6):
            assert a != b
        else:
            assert j2k.clean(a) == b.rstrip(b"\0") or a == b  # untouched: the source's bytes (rule-cleaned)
    x, y, w, h = REGION
    ma, mb = _mosaic(src), _mosaic(dst)
    assert (mb[y:y + h, x:x + w] == 0).all()
    ma[y:y + h, x:x + w] = 0
    assert np.array_equal(ma, mb)  # exactly: the re-encoding is reversible


def test_verifier_catches_a_lossy_reencoding(tmp_path, monkeypatch):
    """A re-encoder that is not lossless (irreversible 9/7, no self-check) fails regions-blank (its pixel-domain part)."""
    from wsideid.jpeg import reencode

    def lossy(codestream, boxes, values):
        want = reencode.blank_array(imagecodecs.jpeg2k_decode(codestream), boxes, values)
        return imagecodecs.jpeg2k_encode(want, level=30, codecformat="J2K", mct=False), want
    monkeypatch.setattr(reencode, "reencode_j2k", lossy)
    folder = copy_into(tmp_path / "j2k", "wsi2dcm_jpeg2000")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationFailed, match="regions-blank|compressed-streams"):
        deidentify(folder, out, options(regions=[REGION], detect="off", reencode_j2k=True))
    assert list(out.iterdir()) == []


def test_j2k_refused_without_the_option(tmp_path):
    folder = copy_into(tmp_path / "j2k", "wsi2dcm_jpeg2000")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RedactionError, match="--reencode-j2k"):
        deidentify(folder, out, options(regions=[REGION], detect="off"))
    assert list(out.iterdir()) == []



def test_verifier_catches_blanking_past_the_recorded_box(aperio_series, tmp_path, monkeypatch):
    """An editor that blanks more than the box it records (here 64 px more of the overview's
    tissue) fails regions-blank (its jpeg-outside part): the coefficients outside the recorded box changed."""
    from wsideid.dicom import redact
    real = redact.FrameEdit

    def narrower(data, boxes=None, kind="jpeg"):
        return real(data, [(x, y, max(1, w - 64), h) for x, y, w, h in (boxes or [])], kind)
    monkeypatch.setattr(redact, "FrameEdit", narrower)
    with pytest.raises(VerificationFailed, match="regions-blank"):
        _run(aperio_series, tmp_path / "out", detect="off")
    assert list((tmp_path / "out").iterdir()) == []
