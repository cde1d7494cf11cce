"""Detectors on DICOM: the removed LABEL is read for QC, a kept one sends the slide to review."""

from __future__ import annotations

import shutil

from wsideid.errors import WsideidError

from wsideid.pipeline import DeidOptions, deidentify

from realdata import real


def _series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("openslide-python_boxes_0", "openslide-python_boxes_1", "mi_test_wsi_label_barcodevalue"):
        shutil.copy(real(f"dicom/{name}.dcm"), folder)
    return folder


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
