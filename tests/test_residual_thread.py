"""The residual scan runs on its thread for every driver (``wsideid.slide_scan_thread``).

Why: the detectors used the other core beside the write for TIFF-family slides
only; DICOM and MIRAX slides were scanned after verification. Every driver now
goes through the same thread: images the driver names as unchanged
(``residual_early``) are read from the source during the write, the others from
the output during verification. The scans must be those of a scan run after the
write: same images, same order, same findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wsideid.options import DeidOptions, with_secret
from wsideid.publish import drop_research_id
from wsideid.registry import open_input
from wsideid.slide_scan import scan_refs

NEW_ID = "RID-0042"


def _svs(tmp_path: Path) -> Path:
    from wsideid.synth import make_svs
    make_svs(str(tmp_path / "s.svs"))
    return tmp_path / "s.svs"


def _mrxs(tmp_path: Path) -> Path:
    from wsideid.mrxs.synth import make_mrxs
    make_mrxs(str(tmp_path / "s.mrxs"))
    return tmp_path / "s.mrxs"


def _dicom(tmp_path: Path) -> Path:
    from test_dicom_fixtures import dicom_file
    return dicom_file("wsi2dcm_jpeg")


def _findings(scans) -> list:
    return [(sc.role, sc.index, sc.stage, sc.error,
             None if sc.result is None else sorted((f.kind, f.value) for f in sc.result.findings)) for sc in scans]


@pytest.mark.parametrize("make,label", [(_svs, "replace"), (_svs, None), (_mrxs, "replace"), (_dicom, None)])
def test_thread_gives_the_scans_of_a_scan_after_the_write(make, label, tmp_path):
    from wsideid.slide_scan_thread import ResidualScan
    src = make(tmp_path)
    opts = with_secret(DeidOptions(new_id=NEW_ID, ocr=False, label=label, detect="residual"))
    opened = open_input(src)
    driver = opened.driver
    plan = driver.plan(opened, opts)
    thread = ResidualScan(driver, opened, plan, [], False, NEW_ID)
    thread.start()
    written = driver.write(opened, plan, str(tmp_path / "scratch"), "out" + driver.extensions[0], opts)
    thread.written(written)
    got = thread.result()
    want = drop_research_id(scan_refs(driver.residual_images(plan, written), "output", [], False), NEW_ID)
    assert got and _findings(got) == _findings(want)


def test_the_runner_uses_the_thread_for_every_driver(tmp_path, monkeypatch):
    """A MIRAX slide (no image the driver can name before writing) goes through the thread too."""
    from wsideid import slide_scan_thread
    from wsideid.pipeline import deidentify
    started = []
    real = slide_scan_thread.ResidualScan.start
    monkeypatch.setattr(slide_scan_thread.ResidualScan, "start", lambda self: (started.append(self.driver.name),
                                                                               real(self)))
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(_mrxs(tmp_path), out, DeidOptions(new_id=NEW_ID, ocr=False, label="replace"))
    assert started == ["mirax"]
    assert res.scans and all(sc.stage == "output" for sc in res.scans)


def test_early_reads_wait_for_the_copy(tmp_path, monkeypatch):
    """The tile-header scan before the copy is Python on the path every run waits for, and the
    stream check beside the copy holds read buffers: the early scans start once that check is
    done (issue 14), never beside either. Both are held for a moment: a residual thread that did
    not wait would read an image meanwhile."""
    import threading

    from wsideid.drivers.tiff import TiffDriver
    from wsideid.pipeline import deidentify
    from wsideid.tiff import jpegsegs
    events: list[str] = []
    real_scan, real_check, real_read = jpegsegs.header_scan, jpegsegs.check_pending, TiffDriver.read_image

    def scan(*a, **k):
        events.append("header-scan")
        threading.Event().wait(0.5)
        return real_scan(*a, **k)

    def check(*a, **k):
        threading.Event().wait(0.5)
        try:
            return real_check(*a, **k)
        finally:
            events.append("stream-check-done")

    def read(self, path, index):
        events.append("read")
        return real_read(self, path, index)
    monkeypatch.setattr(jpegsegs, "header_scan", scan)
    monkeypatch.setattr(jpegsegs, "check_pending", check)
    monkeypatch.setattr(TiffDriver, "read_image", read)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(_svs(tmp_path), out, DeidOptions(ocr=False, detect="residual"))
    assert "header-scan" in events and "read" in events
    assert events.index("read") > max(i for i, e in enumerate(events) if e == "header-scan")
    assert events.index("read") > events.index("stream-check-done")  # their memory never adds
    assert res.scans and all(sc.stage == "output" for sc in res.scans)
