"""Real slides from ../shared/testdata (skipped when absent).

SVS: abbreviated 240x240 tiles with JPEGTables, Photometric=RGB (R, G, B
components, no Adobe marker). NDPI: one restart-marked strip per level with
McuStarts. DICOM: encapsulated baseline JPEG frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from jpeg_fixtures import check_blank, djpeg, needs_tools, shared_file, splice
from wsideid.jpeg import blank_regions, blank_restart_intervals, coefficients, flat_tile
from wsideid.jpeg.decode import reencode

pytestmark = [pytest.mark.realdata, needs_tools]

tifffile = pytest.importorskip("tifffile")


def _svs_tiles(count: int):
    path = shared_file("svs/CMU-1-Small-Region.svs")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.photometric == 2  # RGB: components are R, G, B
        fh = tif.filehandle
        tiles = []
        for off, n in list(zip(page.dataoffsets, page.databytecounts))[:: max(1, len(page.dataoffsets) // count)]:
            fh.seek(off)
            tiles.append(fh.read(n))
        return page.jpegtables, tiles


def _decode_rgb(tile: bytes, tables: bytes) -> np.ndarray:
    """Independent decode (libjpeg via imagecodecs) without colour transform."""
    imagecodecs = pytest.importorskip("imagecodecs")
    return imagecodecs.jpeg8_decode(tile, tables=tables, colorspace="RGB", outcolorspace="RGB")


def test_svs_tiles_round_trip():
    tables, tiles = _svs_tiles(40)
    for tile in tiles:
        assert reencode(tile, tables=tables) == tile


def test_svs_tile_blank_region():
    tables, tiles = _svs_tiles(6)
    boxes = [(50, 61, 70, 33)]  # 4:4:4 -> grows to (48, 56)..(120, 96)
    for tile in tiles:
        out = blank_regions(tile, boxes, "white", tables=tables, colorspace="RGB")
        assert out[:20] == tile[:20]
        a, b = _decode_rgb(tile, tables), _decode_rgb(out, tables)
        region = np.zeros(a.shape[:2], dtype=bool)
        region[56:96, 48:120] = True
        assert np.array_equal(a[~region], b[~region])
        assert (b[region] == 255).all()
        check_blank(tile, out, boxes, (8, 8), None, tables=tables)  # djpeg: clean, same outside


def test_svs_flat_tile():
    tables, tiles = _svs_tiles(3)
    for tile in tiles:
        out = flat_tile(tile, (0, 0, 0), tables=tables, colorspace="RGB")
        assert len(out) < len(tile)
        assert _decode_rgb(out, tables).max() <= 2
        assert djpeg(splice(tables, out))[1] == b""


def _ndpi_strip(level: int):
    path = shared_file("ndpi/test3-TRITC-2-560.ndpi")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level]
        off, n = page.tags[273].value[0], page.tags[279].value[0]
        starts = [int(s) for s in page.tags[65426].value]
        tif.filehandle.seek(off)
        return tif.filehandle.read(n), starts, page.shape[:2]


def test_ndpi_strip_keeps_mcu_starts():
    strip, starts, (h, w) = _ndpi_strip(3)
    assert reencode(strip) == strip
    boxes = [(100, 200, 150, 60)]
    out, new = blank_restart_intervals(strip, starts, boxes, "black", height=h)
    assert new == starts and len(out) == len(strip)
    check_blank(strip, out, boxes, (8, 8), (0, 0, 0))


def test_ndpi_full_level_small_box_is_fast():
    strip, starts, (h, w) = _ndpi_strip(0)
    boxes = [(1000, 2000, 64, 64)]
    out, new = blank_restart_intervals(strip, starts, boxes, "white")
    assert new == starts and len(out) == len(strip)
    changed = [i for i in range(len(starts) - 1) if out[starts[i] : starts[i + 1]] != strip[starts[i] : starts[i + 1]]]
    assert changed == list(range(2000 // 8, 2064 // 8))  # one interval per MCU row


def _dicom_frames(rel: str):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(shared_file(rel))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))), ds


def test_dicom_frames():
    frames, ds = _dicom_frames("dicom/wsi2dcm_jpeg.dcm")
    for frame in frames:
        frame = frame.rstrip(b"\x00")  # even-length padding after EOI
        assert reencode(frame) == frame
    frame = frames[0].rstrip(b"\x00")
    boxes = [(17, 100, 90, 40)]
    out = blank_regions(frame, boxes, "white")
    check_blank(frame, out, boxes, (16, 16), (255, 255, 255))
    c0, c1 = coefficients(frame), coefficients(out)
    assert np.array_equal(c0[0][:12], c1[0][:12])  # MCU rows 0-5 untouched


def test_dicom_label_whole_area():
    frames, ds = _dicom_frames("dicom/mi_test_wsi_label_barcodevalue.dcm")
    frame = frames[0].rstrip(b"\x00")
    out = blank_regions(frame, [(0, 0, int(ds.Columns), int(ds.Rows))], "black")
    pixels, err = djpeg(out)
    assert err == b"" and pixels.max() <= 2
