"""Reduced levels for the residual detectors, decoded at 1/2, 1/4 or 1/8 inside libjpeg's
IDCT (tiff/pixels.py ``_reduced_jpeg_tiles``) instead of decoded whole and sampled.

What must hold: the pixels are those of the level (each the mean of the block it stands
for, in the right colour space, Aperio's RGB-coded tiles included), on the same grid as
before, and the detectors find the same things on a planted label."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from realdata import TESTDATA
from wsideid import slide_scan
from wsideid.synth import label_image, tissue
from wsideid.tiff import pixels


def _block_mean(full: np.ndarray, f: int) -> np.ndarray:
    h, w = full.shape[:2]
    H, W = -(-h // f), -(-w // f)
    pad = np.zeros((H * f, W * f, 3)); pad[:h, :w] = full
    n = np.zeros((H * f, W * f, 1)); n[:h, :w] = 1
    return pad.reshape(H, f, W, f, 3).sum(axis=(1, 3)) / np.maximum(n.reshape(H, f, W, f, 1).sum(axis=(1, 3)), 1)


def _tiled(path, img: np.ndarray, tile: int = 256) -> None:
    tifffile.imwrite(path, img, tile=(tile, tile), photometric="rgb", compression="jpeg",
                     compressionargs={"level": 90})


@pytest.mark.parametrize("f", [2, 4, 8, 16])
def test_scaled_tiles_are_the_block_means_of_the_level(tmp_path, f):
    src = tmp_path / "t.tif"
    img = tissue(1280, 1024, 5)
    _tiled(src, img)
    with tifffile.TiffFile(src) as t:
        page = t.pages[0]
        assert pixels._scalable_jpeg(page, f)
        full = page.asarray()
        got = pixels._reduced_jpeg_tiles(str(src), page, 1280, 1024, f)
    assert got.shape == (1024 // f, 1280 // f, 3)  # the grid the sampled reader gave
    err = np.abs(got.astype(float) - _block_mean(full, f))
    assert err.mean() < 1.5 and np.percentile(err, 99) < 12


def _aperio_tile(rgb: np.ndarray, ids: bytes) -> bytes:
    """A tile coded as R, G, B without a colour transform, as Aperio writes it: no JFIF or
    Adobe marker, component ids ``ids`` (Aperio: 0, 1, 2, which libjpeg would take for YCbCr)."""
    import imagecodecs
    j = imagecodecs.jpeg8_encode(rgb, level=90, colorspace="RGB", outcolorspace="RGB")
    assert j[2:4] == b"\xff\xee"  # libjpeg marks it with Adobe transform 0: drop that
    j = j[:2] + j[4 + int.from_bytes(j[4:6], "big"):]
    sof = j.index(b"\xff\xc0")
    ncomp = j[sof + 9]
    out = bytearray(j)
    sos = j.index(b"\xff\xda")
    for c in range(ncomp):
        out[sof + 10 + 3 * c] = ids[c]
        out[sos + 5 + 2 * c] = ids[c]
    return bytes(out)


@pytest.mark.parametrize("ids", [bytes((0, 1, 2)), b"RGB"])
def test_rgb_coded_tiles_keep_their_colours(tmp_path, ids):
    """Photometric RGB without JFIF is RGB data (tifffile's reading), whatever libjpeg would guess."""
    src = tmp_path / "a.tif"
    rgb = np.zeros((256, 256, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 20
    rgb[:128, :, :] = (30, 90, 210)
    tile = _aperio_tile(rgb, ids)
    with tifffile.TiffWriter(src) as tw:
        tw.write(iter([tile] * 4), shape=(512, 512, 3), dtype="uint8", tile=(256, 256), photometric="rgb",
                 compression="jpeg")
    with tifffile.TiffFile(src) as t:  # tifffile writes JPEG as YCbCr: say RGB, as Aperio does
        at = t.pages[0].tags["PhotometricInterpretation"].valueoffset
    with open(src, "r+b") as fh:
        fh.seek(at)
        fh.write((2).to_bytes(2, "little"))
    with tifffile.TiffFile(src) as t:
        page = t.pages[0]
        assert page.photometric == 2 and pixels._scalable_jpeg(page, 4)
        ref = page.asarray()  # tifffile: RGB in, RGB out
        got = pixels._reduced_jpeg_tiles(str(src), page, 512, 512, 4)
    assert np.abs(ref[200, 10].astype(int) - (200, 60, 20)).max() <= 3
    assert np.abs(got.astype(float) - _block_mean(ref, 4)).mean() < 1.5


@pytest.mark.realdata
@pytest.mark.skipif(not (TESTDATA / "svs" / "CMU-1-Small-Region.svs").exists(), reason="needs ../shared/testdata")
def test_real_aperio_level_scaled_matches_tifffile():
    """CMU-1: abbreviated tiles (JPEGTables), RGB-coded with component ids 0, 1, 2."""
    src = str(TESTDATA / "svs" / "CMU-1-Small-Region.svs")
    with tifffile.TiffFile(src) as t:
        page = t.pages[0]
        h, w = page.shape[:2]
        full = page.asarray()
        for f in (2, 8):
            got = pixels._reduced_jpeg_tiles(src, page, w, h, f)
            assert np.abs(got.astype(float) - _block_mean(full, f)).mean() < 1.5


def test_reader_uses_the_scaled_path_and_keeps_the_reduced_size(tmp_path, monkeypatch):
    src = tmp_path / "t.tif"
    _tiled(src, tissue(1024, 768, 2))
    calls = []
    real = pixels._reduced_jpeg_image  # the reader pastes the scaled tiles into its image
    monkeypatch.setattr(pixels, "_reduced_jpeg_image", lambda *a: calls.append(a[-1]) or real(*a))
    monkeypatch.setattr(pixels, "MAX_SCAN_PIXELS", 50_000)  # 1024x768 -> 1/4
    img = slide_scan.read_tiff_image(str(src), 0)
    assert calls == [4] and img.size == (256, 192)
    with tifffile.TiffFile(src) as t:  # the same pixels as the array path
        assert (np.asarray(img) == pixels._reduced_jpeg_tiles(str(src), t.pages[0], 1024, 768, 4)).all()


def test_a_tile_whose_frame_is_not_its_tile_size_is_refused(tmp_path):
    """A JPEG tile smaller than the TIFF's tile would leave part of the level unread."""
    import io
    src = tmp_path / "t.tif"
    small = io.BytesIO()
    Image.fromarray(tissue(128, 128, 1)).save(small, "JPEG")
    with tifffile.TiffWriter(src) as tw:
        tw.write(iter([small.getvalue()] * 4), shape=(512, 512, 3), dtype="uint8", tile=(256, 256),
                 photometric="ycbcr", compression="jpeg", subsampling=(2, 2))
    with tifffile.TiffFile(src) as t:
        page = t.pages[0]
        with pytest.raises(Exception, match="not the 256x256"):
            pixels._reduced_jpeg_tiles(str(src), page, 512, 512, 2)


def test_planted_label_on_a_level_is_found_the_same_as_by_the_sampled_reader(tmp_path, monkeypatch):
    """The residual scan of a level with a printed label pasted into the tissue: the scaled
    reader gives the detectors what the sampled one gave (the same flags)."""
    level = tissue(2560, 1920, 4)
    label = label_image(1100, 420, ["SMITH, JOHN", "MRN 4471923", "DOB 1951-03-02"])
    level[200:200 + label.shape[0], 1200:1200 + label.shape[1]] = label[..., :3]
    src = tmp_path / "lvl.tif"
    _tiled(src, level)
    monkeypatch.setattr(pixels, "OUTPUT_SCAN_PIXELS", 1_300_000)  # 2560x1920 -> 1/2 (1280x960)

    def flags() -> set[str]:
        [scan] = slide_scan.scan_images(str(src), [("thumbnail", 0)], "output", ocr=True)
        assert scan.error is None and scan.result is not None
        return {fl.category for f in scan.result.findings for fl in f.flags}

    scaled = flags()
    monkeypatch.setattr(pixels, "_scalable_jpeg", lambda page, f: False)
    sampled = flags()
    assert {"mrn", "date"} <= scaled, scaled
    assert scaled == sampled


def test_a_level_the_detectors_reduce_is_decoded_at_their_size(tmp_path, monkeypatch):
    """Issue 14: a kept level read at 1/2 that the detectors reduce by 2 more is decoded at
    1/4 directly. It must stand for the same read: the size, factor and boxes of
    ``reduce_kept`` as before, each pixel the mean of the same block (within rounding)."""
    from wsideid.detect import residual
    src = tmp_path / "lvl.tif"
    _tiled(src, tissue(2560, 1920, 6))
    monkeypatch.setattr(pixels, "OUTPUT_SCAN_PIXELS", 1_300_000)  # 2560x1920 -> 1/2 (1280x960)
    monkeypatch.setattr(residual, "MAX_LONG_SIDE", 640)  # the detectors then reduce by 2

    def kept(side: int | None):
        with pixels.scan_limit(pixels.OUTPUT_SCAN_PIXELS), pixels.detector_side(side or 0):
            return residual.reduce_kept(slide_scan.read_tiff_image(str(src), 0))
    direct, before = kept(640), kept(None)  # None: no side given, the read as before
    assert direct.image.info.get(pixels.READ_AT) == (1280, 960) and pixels.READ_AT not in before.image.info
    assert (direct.factor, direct.size, direct.image.size) == (before.factor, before.size, before.image.size) \
        == (2, (1280, 960), (640, 480))
    err = np.abs(np.asarray(direct.image, float) - np.asarray(before.image, float))
    assert err.mean() < 1.5 and np.percentile(err, 99) < 12


def test_a_read_that_does_not_stand_for_its_size_is_refused():
    """An image marked as a reduction of a size it is not (a reader's mistake) would put
    every box in the wrong place: the scan of that image fails (the slide goes to review)."""
    from wsideid.detect import residual
    from wsideid.detect.errors import DetectorError
    img = Image.new("RGB", (500, 480))
    img.info[pixels.READ_AT] = (2560, 1920)
    with pytest.raises(DetectorError, match="does not stand for"):
        residual.reduce_kept(img)


def test_planted_label_on_a_level_read_at_the_detectors_size_is_found_the_same(tmp_path, monkeypatch):
    """The residual scan of a level with a printed label, read at the detectors' size: the
    same flags, and boxes in the same pixels, as the read at the scan limit then reduced."""
    from wsideid.detect import residual
    level = tissue(2560, 1920, 4)
    label = label_image(1100, 420, ["SMITH, JOHN", "MRN 4471923", "DOB 1951-03-02"])
    level[200:200 + label.shape[0], 1200:1200 + label.shape[1]] = label[..., :3]
    src = tmp_path / "lvl.tif"
    _tiled(src, level)
    monkeypatch.setattr(pixels, "OUTPUT_SCAN_PIXELS", 5_000_000)  # 2560x1920 read whole (f = 1)
    monkeypatch.setattr(residual, "MAX_LONG_SIDE", 1280)  # then reduced by 2: decoded at 1/2

    def scan():
        [sc] = slide_scan.scan_images(str(src), [("thumbnail", 0)], "output", ocr=True)
        assert sc.error is None and sc.result is not None
        return sc.result

    calls = []
    real = pixels._detector_jpeg_image
    monkeypatch.setattr(pixels, "_detector_jpeg_image", lambda *a: calls.append(a[-2:]) or real(*a))
    direct = scan()
    assert calls == [(1, 2)]  # read whole, reduced by 2: decoded at 1/2
    monkeypatch.setattr(pixels, "detector_reduction", lambda w, h: 1)
    before = scan()
    cats = lambda r: {fl.category for f in r.findings for fl in f.flags}  # noqa: E731
    assert {"mrn", "date"} <= cats(direct) and cats(direct) == cats(before)
    assert direct.size == before.size == (2560, 1920)
    for f in (f for f in direct.findings if f.flags):  # every flagged box lies on the label
        assert 1200 - 8 <= f.box[0] and f.box[2] <= 1200 + 1100 + 8 and 200 - 8 <= f.box[1] <= f.box[3] <= 620 + 8
