"""Memory stays flat when a region blanks every frame of a DICOM instance.

Blanked frames used to be held as bytes until written (``FrameEdit.data``),
so a large ``--region`` over native (uncompressed) frames grew memory with
the region. The series here is built by the project's own code
(``wsideid.synth.make_dicom``), its level-0 VOLUME rewritten as native RGB
frames of two sizes; each run is a child process that reports its own peak
RSS (VmHWM, which exec resets, so nothing of pytest is counted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from test_stream_memory import CHILD  # the child that reports its own peak RSS

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 100  # the project's budget at any slide size
GROWTH_MB = 20  # 16 frames (12 MB) against 144 (108 MB): noise, not data
FRAME = 512

BUILD = r"""
import os, sys
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from wsideid.synth import make_dicom
folder, side = sys.argv[1], int(sys.argv[2])
make_dicom(folder)
files = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
heads = {f: pydicom.dcmread(f, stop_before_pixels=True) for f in files}
level0 = max((f for f in files if heads[f].ImageType[2] == "VOLUME"), key=lambda f: int(heads[f].TotalPixelMatrixColumns))
for f in files:
    if f != level0:
        os.unlink(f)
ds = pydicom.dcmread(level0)
frame = int(sys.argv[3])
ds.Columns = ds.Rows = frame
ds.TotalPixelMatrixColumns = ds.TotalPixelMatrixRows = side * frame
ds.NumberOfFrames = side * side
ds.PhotometricInterpretation = "RGB"
ds.SamplesPerPixel, ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 0, 8, 8, 7
rng = np.random.default_rng(side)
ds.PixelData = rng.integers(0, 256, side * side * frame * frame * 3, dtype=np.uint8).tobytes()
ds["PixelData"].VR = "OB"
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.save_as(level0, enforce_file_format=True)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    pytest.importorskip("wsidicomizer")
    out = {}
    for side in (4, 12):
        folder = tmp_path_factory.mktemp(f"native{side}")
        subprocess.run([sys.executable, "-c", BUILD, str(folder), str(side), str(FRAME)], check=True, env=_env())
        out[side] = folder
    return out


def _deid(src: Path, out: Path, region: str) -> tuple[int, dict]:
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHILD, "deid", str(src), "-o", str(out), "--detect", "off",
                           "--new-id", "R-1", "--json", "--region", region], capture_output=True, text=True,
                          env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-800:]
    kb = [int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("PEAK_KB")]
    return kb[-1] // 1024, json.loads(proc.stdout)


def _all_white(out: Path, side: int) -> bool:
    outs = [os.path.join(dp, f) for dp, _, fs in os.walk(out) for f in fs if f.endswith(".dcm")]
    assert len(outs) == 1, outs
    pixels = np.frombuffer(pydicom.dcmread(outs[0]).PixelData, np.uint8)
    return pixels.size == side * side * FRAME * FRAME * 3 and bool((pixels == 255).all())


def test_region_over_several_native_frames_is_verified(series, tmp_path):
    """Every native frame blanked; the verifier reads JPEG frames only where it decodes JPEG
    (a multi-frame native instance used to end in an IndexError, exit 70)."""
    _, res = _deid(series[4], tmp_path / "o", f"0,0,{4 * FRAME},{4 * FRAME}")
    assert res["status"] == "published" and all(c["status"] in ("passed", "not-applicable") for c in res["checks"])
    assert _all_white(tmp_path / "o", 4)


def test_region_over_every_native_frame_memory_does_not_grow(series, tmp_path):
    peaks = {}
    for side, folder in series.items():
        full = side * FRAME
        peaks[side], _ = _deid(folder, tmp_path / f"o{side}", f"0,0,{full},{full}")
        assert _all_white(tmp_path / f"o{side}", side)  # every frame blanked white
    print("peak RSS MB by frames across:", peaks)
    assert max(peaks.values()) <= LIMIT_MB, peaks
    assert peaks[12] - peaks[4] <= GROWTH_MB, peaks


def test_kept_instances_are_read_at_the_output_scan_limit(series):
    """The residual stage reads a kept DICOM instance no larger than a kept TIFF image
    (OUTPUT_SCAN_PIXELS, 4 MP: 2048 x 2048 becomes 1024 x 1024); a removed one, read before it
    goes, keeps the larger MAX_SCAN_PIXELS. One reduction function for both formats."""
    from wsideid.dicom.scanimage import instance_image
    from wsideid.slide_scan import scan_images
    from wsideid.tiff import pixels
    path = str(next(series[4].glob("*.dcm")))
    side = 4 * FRAME
    assert side * side > pixels.OUTPUT_SCAN_PIXELS and side * side <= pixels.MAX_SCAN_PIXELS
    assert instance_image(path, 0).size == (side, side)
    with pixels.scan_limit(pixels.OUTPUT_SCAN_PIXELS):
        assert instance_image(path, 0).size == (side // 2, side // 2)
    seen = []

    def reader(p, i):
        img = instance_image(p, i)
        seen.append(img.size)
        return img
    scan_images(path, [("thumbnail", 0)], "output", ocr=False, reader=reader)
    scan_images(path, [("label", 0)], "source", ocr=False, reader=reader)
    assert seen == [(side // 2, side // 2), (side, side)]
    assert pixels.reduction_factor(2049, 1, 2048) == 2 and pixels.reduction_factor(2048, 1, 2048) == 1  # rounded up


@pytest.mark.parametrize("trim", [0, 100])
def test_kept_instance_reads_as_its_frames_assembled(series, tmp_path, trim):
    """The scan image is pasted frame by frame into one PIL image (no full-size numpy copy):
    the same pixels as the frames assembled in TILED_FULL order, reduced, cropped at the edges."""
    from wsideid.dicom.scanimage import instance_image
    from wsideid.tiff import pixels
    src = next(series[4].glob("*.dcm"))
    ds = pydicom.dcmread(src)
    side = 4 * FRAME
    frames = np.frombuffer(ds.PixelData, np.uint8).reshape(4, 4, FRAME, FRAME, 3)  # native RGB, row by row
    full = frames.transpose(0, 2, 1, 3, 4).reshape(side, side, 3)
    path = src
    if trim:  # a pixel matrix that ends inside the last row and column of frames (small enough to read whole)
        ds.TotalPixelMatrixColumns = ds.TotalPixelMatrixRows = side - trim
        path = tmp_path / "trimmed.dcm"
        ds.save_as(path, enforce_file_format=True)
        full = full[:side - trim, :side - trim]
    f = pixels.scan_factor(full.shape[1], full.shape[0], pixels.OUTPUT_SCAN_PIXELS)
    assert f == (2 if not trim else 1)
    with pixels.scan_limit(pixels.OUTPUT_SCAN_PIXELS):
        got = np.asarray(instance_image(str(path), 0))
    assert np.array_equal(got, full[::f, ::f])
