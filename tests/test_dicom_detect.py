"""Detectors on DICOM: the removed LABEL is read for QC, a kept one sends the slide to review."""

from __future__ import annotations


from wsideid.errors import WsideidError

from wsideid.pipeline import DeidOptions, deidentify

from realdata import real


def _series(tmp_path):
    real("dicom/openslide-python_boxes_0.dcm")  # skips cleanly without the test data
    from test_dicom_fixtures import copy_into  # the label joins the boxes slide
    return copy_into(tmp_path / "series", "openslide-python_boxes_0", "openslide-python_boxes_1",
                     "mi_test_wsi_label_barcodevalue")


def test_removed_label_is_read_for_qc(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(_series(tmp_path), out, DeidOptions(new_id="R-1", detect="all", ocr=False))
    assert res.status == "published"
    src = [s for s in res.scans if s.stage == "source" and s.role == "label"]
    assert src and [f.value for f in src[0].result.findings] == ["Wikipedia"]
    assert "Wikipedia" not in open(res.audit_path).read()  # values stay out of the audit


def test_kept_label_with_a_barcode_is_flagged(tmp_path):
    profile = tmp_path / "keep-label.toml"
    profile.write_text('[profile]\nformat = "dicom"\n[images]\nlabel = "keep"\n')
    out = tmp_path / "out"
    out.mkdir()
    try:
        res = deidentify(_series(tmp_path), out, DeidOptions(new_id="R-2", profile=str(profile), ocr=False))
    except WsideidError:
        # also acceptable: the kept label fails IOD validation (its Type 2
        # BarcodeValue was removed), so nothing is published at all
        assert list(out.iterdir()) == []
        return
    assert res.status == "flagged"
    assert list(out.iterdir()) == []
    assert (tmp_path / "out-review" / "flagged" / "R-2").exists()


def test_grayscale_and_jpegls_are_scanned_not_flagged(tmp_path):
    """16-bit grayscale and JPEG-LS instances are decoded for the detectors (they went to
    review with "only 8-bit native pixel data is scanned" / UnidentifiedImageError)."""
    for name in ("highdicom_sm_image_grayscale", "highdicom_sm_image_jpegls"):
        out = tmp_path / name
        out.mkdir()
        res = deidentify(real(f"dicom/{name}.dcm"), out, DeidOptions(new_id="R-3", ocr=False))
        scans = [s for s in res.scans if s.stage == "output"]
        assert scans and all(s.error is None and s.result is not None for s in scans), \
            [(s.role, s.error) for s in scans]
        assert res.status == "published", name


def test_pixels_are_read_bounded_and_windowed(tmp_path):
    """The reader keeps to its pixel budget (powers of two) and windows 16 bits to 8."""
    import numpy as np
    from wsideid.dicom.scanimage import instance_image
    gray = instance_image(str(real("dicom/highdicom_sm_image_grayscale.dcm")), 0)
    arr = np.asarray(gray)
    assert gray.mode == "L" and arr.min() == 0 and arr.max() == 255
    small = instance_image(str(real("dicom/wsi2dcm_jpeg.dcm")), 0, limit=100_000)
    full = instance_image(str(real("dicom/wsi2dcm_jpeg.dcm")), 0)
    assert small.size[0] * small.size[1] <= 100_000
    assert small.size == (-(-full.size[0] // 4), -(-full.size[1] // 4))


def test_undecodable_frame_stays_flagged_with_a_reason(tmp_path):
    """A frame no decoder reads is not passed: the output scan records our reason."""
    import pydicom
    from pydicom.encaps import encapsulate
    from wsideid.slide_scan import scan_images
    from wsideid.dicom.scanimage import instance_image
    ds = pydicom.dcmread(real("dicom/highdicom_sm_image_jpegls.dcm"))
    n = int(ds.NumberOfFrames)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7 QUOKKA not a JPEG-LS stream"] * n)
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    scans = scan_images(str(bad), [("thumbnail", 0)], "output", reader=instance_image, ocr=False)
    assert scans[0].result is None and scans[0].has_phi is False
    assert scans[0].error.startswith("a compressed frame could not be decoded (")
    assert "QUOKKA" not in scans[0].error


def test_every_reduced_level_is_scanned(tmp_path):
    """Item 4: the detectors read every kept VOLUME instance except the full-resolution one
    (wsidicomizer writes three levels for the synthetic SVS: two reduced ones are scanned)."""
    import pydicom
    from test_dicom_fixtures import synthetic_series
    src = synthetic_series(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(new_id="R-4", ocr=False))
    sizes = {}
    for f in src.glob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if ds.ImageType[2] == "VOLUME":
            sizes[int(ds.TotalPixelMatrixColumns)] = f
    assert len(sizes) >= 2
    levels = [s for s in res.scans if s.stage == "output" and s.role == "level"]
    assert len(levels) == len(sizes) - 1, [(s.index, s.error) for s in levels]
    assert all(s.error is None for s in levels)
