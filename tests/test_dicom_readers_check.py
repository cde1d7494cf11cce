"""The DICOM readers check (``reader``): wsidicom and OpenSlide must open the output wherever
they support the slide; a reader that cannot open the input no longer excuses the output.

- a reader that does not support the slide at all (``dicom.reader_support``: OpenSlide and
  JPEG-LS) is a named not-applicable part, declared before the readers run, and not asked;
- a reader that supports the slide but cannot open the input must still open the output
  (a duplicated level: both fail, so the slide is refused; before, "skipped" passed it);
- an input the reader cannot open whose output it can (a label it cannot decode, removed)
  passes, and says so;
- the child process answers without being waited on (it overlaps the other checks).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from realdata import real
from wsideid.checks import CheckStatus
from wsideid.dicom.plan import DicomOptions
from wsideid.errors import VerificationFailed
from wsideid.keys import Secret
from wsideid.options import DetectMode
from wsideid.pipeline import DeidOptions, deidentify

SECRET = Secret(b"readers-check-secret-0123456789abcdef", "test")


def _options() -> DeidOptions:
    return DeidOptions(new_id="R-RD-1", detect=DetectMode.OFF, dicom=DicomOptions(secret=SECRET))


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    pytest.importorskip("wsidicomizer")
    from wsideid.synth import make_dicom
    return Path(make_dicom(str(tmp_path_factory.mktemp("readers") / "series")).path)


def _copy(series: Path, dest: Path) -> Path:
    shutil.copytree(series, dest)
    return dest


def _by_type(folder: Path, kind: str) -> Path:
    import pydicom
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.ImageType[2] == kind and (kind != "VOLUME" or "RESAMPLED" not in ds.ImageType):
            return p  # a VOLUME: the full-resolution one
    raise AssertionError(kind)


def _reader_row(res):
    return next(c for c in res.report.checks if c.name == "reader")


def test_a_supported_reader_that_opens_neither_input_nor_output_refuses(series, tmp_path):
    """A second level-0 instance (own SOP Instance UID, same size): OpenSlide refuses such a
    series ("unexpected image") in the input and in the output alike."""
    import pydicom
    from pydicom.uid import generate_uid
    src = _copy(series, tmp_path / "series")
    ds = pydicom.dcmread(_by_type(src, "VOLUME"))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(src / "duplicate-level.dcm")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationFailed) as err:
        deidentify(src, out, _options())
    assert "reader" in err.value.checks
    assert "openslide: cannot open the output" in str(err.value)
    assert not os.listdir(out)


def test_an_input_the_reader_cannot_open_passes_when_the_output_opens(series, tmp_path):
    """The label claims a colour model OpenSlide does not decode in JPEG: OpenSlide cannot open
    the input; the label is removed, so the output opens, and the row says the input did not."""
    import pydicom
    src = _copy(series, tmp_path / "series")
    label = _by_type(src, "LABEL")
    ds = pydicom.dcmread(label)
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.save_as(label)
    (tmp_path / "out").mkdir()
    res = deidentify(src, tmp_path / "out", _options())
    row = _reader_row(res)
    assert res.status == "published" and row.status is CheckStatus.PASSED
    assert "openslide: 2 level(s)" in row.detail and "(the input did not open: OpenSlideError)" in row.detail


def test_a_reader_that_does_not_support_the_slide_is_a_named_not_applicable_part(tmp_path):
    """JPEG-LS: OpenSlide decodes no such frames (declared up front, never asked); wsidicom does."""
    src = real("dicom/highdicom_sm_image_jpegls.dcm")
    res = deidentify(src, tmp_path, _options())
    row = _reader_row(res)
    assert row.status is CheckStatus.PASSED
    assert "openslide: not applicable: openslide does not read this slide (transfer syntax 1.2.840.10008.1.2.4.80)" \
        in row.detail
    assert "wsidicom: 1 level(s)" in row.detail and "skipped" not in row.detail


def test_the_readers_child_answers_without_being_waited_on(tmp_path):
    """The questions are in the child's stdin from the start: it opens the slides while the
    verifier runs its other checks, and exits on its own (before, it waited for ``result``)."""
    from wsideid.dicom import readers
    src = real("dicom/wsi2dcm_jpeg.dcm")
    pending = readers.start([(readers.Reader.WSIDICOM, [str(src)]), (readers.Reader.OPENSLIDE, [str(src)])])
    try:
        assert pending.proc.wait(timeout=120) == 0  # a hang guard, not a speed limit
        w, o = pending.result()
        assert w.levels and o.levels and w.levels[0] == o.levels[0] == (957, 715)
    finally:
        pending.close()
