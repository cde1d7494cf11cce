"""Blanking through libjpeg-turbo's transcoder (``jpeg.transcode``, issue 14:
blanking speed) against the pure-Python walk it stands in for.

The two must give the same bytes wherever the transcoder is used, and the transcoder must
stand aside (the walk then decides, with its errors) wherever it cannot prove itself:
tables libjpeg does not code with, restart intervals, damaged data, no library. Independently
of both, every block outside the region keeps its exact coefficients (the project's own
decoder, which shares nothing with libjpeg) and djpeg shows the same pixels outside it.
"""

from __future__ import annotations

import random
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from jpeg_fixtures import VARIANTS, check_blank, cjpeg, needs_tools, pil_jpeg, split_abbreviated, texture, variant
from realdata import real
from wsideid.jpeg import JpegBlankingError, blank_regions_detailed, coefficients, turbo
from wsideid.jpeg import transcode
from wsideid.jpeg.blank import Blanker
from wsideid.jpeg.markers import parse

pytestmark = pytest.mark.skipif(not turbo.available(), reason="libturbojpeg (apt libturbojpeg0) not installed")

# Tile-like images coded with the standard tables (Pillow's default), which libjpeg codes with.
TILES = {
    "444": lambda: pil_jpeg(texture(256, 256, 21), 0),
    "422": lambda: pil_jpeg(texture(256, 256, 22), 1),
    "420": lambda: pil_jpeg(texture(256, 256, 23), 2),
    "grey": lambda: pil_jpeg(texture(256, 256, 24, grey=True)),
    "240_420": lambda: pil_jpeg(texture(240, 240, 25), 2),
    "odd_420": lambda: pil_jpeg(texture(232, 200, 26), 2),  # padding blocks right and below
    "odd_444": lambda: pil_jpeg(texture(203, 151, 27), 0),
}
TILE_MCU = {"444": (8, 8), "422": (16, 8), "420": (16, 16), "grey": (8, 8), "240_420": (16, 16),
            "odd_420": (16, 16), "odd_444": (8, 8)}
BOXES = [
    [(100, 40, 300, 90)],  # to the right edge
    [(0, 0, 37, 256)],  # left columns, every row
    [(30, 150, 500, 500)],  # bottom right corner
    [(20, 20, 40, 40), (150, 100, 30, 70)],  # two boxes
    [(0, 0, 999, 999)],  # the whole image
]
_made: dict[str, bytes] = {}


def tile(name: str) -> bytes:
    if name not in _made:
        _made[name] = TILES[name]()
    return _made[name]


def outcome(data: bytes, boxes, fill="white", tables=None, transcode=True):
    """The result's fields, or the error's text."""
    try:
        r = blank_regions_detailed(data, boxes, fill, tables=tables, transcode=transcode)
    except JpegBlankingError as exc:
        return str(exc)
    return r.data, r.mcus_blanked, r.intervals_reencoded, r.max_fill_error


@pytest.fixture
def no_walk(monkeypatch):
    """The walk fails the test if it runs: the transcoder must have made the bytes."""
    def walk(*_a, **_k):
        raise AssertionError("the walk ran: the transcoder stood aside")
    monkeypatch.setattr(Blanker, "reencode", walk)


@pytest.mark.parametrize("name", sorted(TILES))
@pytest.mark.parametrize("fill", ["white", "black", (200, 30, 90)])
def test_transcoder_makes_the_walks_bytes(name, fill, monkeypatch):
    src = tile(name)
    want = [outcome(src, boxes, fill, transcode=False) for boxes in BOXES]
    def walk(*_a, **_k):
        raise AssertionError("the walk ran: the transcoder stood aside")
    monkeypatch.setattr(Blanker, "reencode", walk)
    for boxes, expected in zip(BOXES, want):
        assert outcome(src, boxes, fill) == expected, boxes


@pytest.mark.parametrize("name", sorted(TILES))
def test_untouched_blocks_keep_their_coefficients(name, no_walk):
    """Outside the MCU-grown boxes every block's coefficients are the source's (the project's
    own decoder, independent of libjpeg); inside, blocks are flat (DC only)."""
    src = tile(name)
    hdr = parse(src)
    mw, mh = TILE_MCU[name]
    for boxes in BOXES:
        out = blank_regions_detailed(src, boxes).data
        grid = np.zeros((-(-hdr.height // mh), -(-hdr.width // mw)), dtype=bool)
        for x, y, w, h in boxes:
            grid[y // mh : -(-(y + h) // mh), x // mw : -(-(x + w) // mw)] = True
        for comp, a, b in zip(hdr.components, coefficients(src), coefficients(out)):
            m = grid if len(hdr.components) == 1 else np.repeat(np.repeat(grid, comp.v, 0), comp.h, 1)
            assert m.shape == a.shape[:2]
            assert np.array_equal(a[~m], b[~m])
            assert not b[m][:, 1:].any()
            assert len(set(b[m][:, 0].tolist())) <= 1  # the one flat fill


@needs_tools
@pytest.mark.parametrize("name", ["444", "420", "odd_420", "grey"])
def test_djpeg_sees_the_same_pixels_outside(name, no_walk):
    src = tile(name)
    rgb = (255, 255, 255) if name != "grey" else (255,)
    for boxes in BOXES[:4]:
        check_blank(src, blank_regions_detailed(src, boxes).data, boxes, TILE_MCU[name], rgb)


@needs_tools
def test_rgb_components_with_adobe_marker(no_walk):
    """cjpeg -rgb: R, G, B components on table 0 each (Aperio's layout), Adobe transform 0."""
    src = cjpeg(texture(256, 256, 28), "-rgb")
    assert [(c.td, c.ta) for c in parse(src).scan_components] == [(0, 0)] * 3
    for boxes in BOXES:
        got = outcome(src, boxes)
        assert isinstance(got, tuple)
        check_blank(src, got[0], boxes, (8, 8), (255, 255, 255))


def test_abbreviated_tile_with_jpegtables(monkeypatch):
    tables, body = split_abbreviated(tile("420"))
    want = outcome(body, BOXES[0], tables=tables, transcode=False)
    monkeypatch.setattr(Blanker, "reencode", lambda *a, **k: pytest.fail("the walk ran"))
    assert outcome(body, BOXES[0], tables=tables) == want
    assert want[0][:2] == b"\xff\xd8" and b"\xff\xc4" not in want[0]  # still abbreviated: no tables written


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_fixture_variant_same_outcome(name):
    """Optimised tables, restart intervals, odd sampling, RGB: the transcoder takes what it can
    prove and leaves the rest to the walk; either way the bytes are the walk's."""
    src = variant(name)
    for boxes in ([(30, 20, 50, 40), (0, 60, 9, 3)], [(0, 0, 5000, 5000)]):
        for fill in ("white", (200, 30, 90)):
            assert outcome(src, boxes, fill) == outcome(src, boxes, fill, transcode=False)


def _spy_calls(monkeypatch) -> list:
    calls = []
    real_blank = turbo.blank_blocks
    def spy(*a, **k):
        calls.append(1)
        return real_blank(*a, **k)
    monkeypatch.setattr(turbo, "blank_blocks", spy)
    return calls


@pytest.mark.parametrize("name", ["444opt", "rst420rows", "rst444mcus", "odd_sampling"])
def test_not_tried_where_it_cannot_apply(name, monkeypatch):
    """Tables without every DC category (optimised), restart intervals (libjpeg writes none),
    table slots libjpeg never assigns: libjpeg is not even called."""
    calls = _spy_calls(monkeypatch)
    src = variant(name)
    assert outcome(src, [(30, 20, 50, 40)]) == outcome(src, [(30, 20, 50, 40)], transcode=False)
    if name != "odd_sampling":
        assert not calls


def _other_tables(src: bytes) -> bytes:
    """``src`` (standard tables, 4:4:4) coded again with a luminance AC table whose two
    2-bit codes are swapped: complete, valid, not libjpeg's."""
    from wsideid.jpeg import bits
    from wsideid.jpeg.decode import _decode_all
    from wsideid.jpeg.entropy import encode_blocks, slot_tables
    from wsideid.jpeg.layout import layout
    std = bytes([0x10, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]) + b"\x01\x02"
    hdr0 = parse(src)
    head = src[: hdr0.entropy_start]
    assert head.count(std) == 1
    head = head.replace(std, std[:-2] + b"\x02\x01")
    _, _, _, _, per_interval = _decode_all(src, None, None)
    new = head + src[hdr0.entropy_start :]
    hdr = parse(new)
    st = slot_tables(hdr, layout(hdr))
    body = bits.from_bitstring(encode_blocks(per_interval[0], st, len(hdr.scan_components)))
    return head + body + b"\xff\xd9"


def test_other_complete_tables_refused_then_remembered(monkeypatch):
    """libjpeg codes with the standard tables: for any other tables its blanked stream would
    not be the source's coding, so it is refused (by comparing the tables it wrote), the
    tables are remembered and the next tile with them goes straight to the walk."""
    src = _other_tables(tile("444"))
    assert [b.tolist() for b in coefficients(src)] == [b.tolist() for b in coefficients(tile("444"))]
    transcode._OTHER_TABLES.clear()
    calls = _spy_calls(monkeypatch)
    assert outcome(src, BOXES[0]) == outcome(src, BOXES[0], transcode=False)
    assert len(calls) == 1 and len(transcode._OTHER_TABLES) == 1
    assert outcome(src, BOXES[1]) == outcome(src, BOXES[1], transcode=False)
    assert len(calls) == 1


def test_without_the_library_the_walk_does_it(monkeypatch):
    src = tile("420")
    want = outcome(src, BOXES[0], transcode=False)
    monkeypatch.setattr(turbo, "_library", lambda: None)
    assert outcome(src, BOXES[0]) == want


@pytest.mark.parametrize("name", ["420", "444", "odd_420"])
def test_damaged_data_same_outcome_as_the_walk(name):
    """Flipped bits and cut data: the same bytes or the same refusal, never a stream the walk
    would not make (libjpeg glosses over damage; re-coding exposes it)."""
    src = tile(name)
    hdr = parse(src)
    rng = random.Random(name)
    tried = 0
    for _ in range(60):
        bad = bytearray(src)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(hdr.entropy_start, hdr.entropy_end)
            bad[i] ^= 1 << rng.randrange(8)
        cut = bytes(bad[: rng.randrange(hdr.entropy_start + 10, len(bad))]) + b"\xff\xd9"
        for data in (bytes(bad), cut):
            walk = outcome(data, BOXES[0], transcode=False)
            assert outcome(data, BOXES[0]) == walk
            tried += isinstance(walk, str)
    assert tried  # some of them the walk refuses


def test_concurrent_threads_same_bytes():
    """One TurboJPEG handle per thread."""
    jobs = [(tile(n), b) for n in ("444", "420", "grey") for b in BOXES]
    want = [outcome(d, b) for d, b in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: outcome(*job), jobs * 3))
    assert got == want * 3


@pytest.mark.realdata
def test_real_svs_tiles_transcoded_as_the_walk(monkeypatch):
    """CMU-1 (Aperio): abbreviated 240 px tiles, JPEGTables, R, G, B components all on table 0,
    no Adobe marker. The transcoder is told RGB (Adobe transform 0) so libjpeg uses table 0
    for all three, and it then makes the walk's bytes."""
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(real("svs/CMU-1-Small-Region.svs")) as tif:
        page = tif.pages[0]
        tables, fh = page.jpegtables, tif.filehandle
        tiles = []
        for off, n in list(zip(page.dataoffsets, page.databytecounts))[::7]:
            fh.seek(off)
            tiles.append(fh.read(n))
    calls = _spy_calls(monkeypatch)
    for data in tiles:
        for boxes in ([(13, 40, 100, 100)], [(0, 0, 240, 30)]):
            want = outcome(data, boxes, tables=tables, transcode=False)
            res = blank_regions_detailed(data, boxes, tables=tables)
            assert (res.data, res.mcus_blanked, res.intervals_reencoded, res.max_fill_error) == want
    assert len(calls) == 2 * len(tiles)


@pytest.mark.realdata
def test_real_slide_plan_regions_same_edits(monkeypatch):
    """``redaction.plan_regions`` on CMU-1 (every level and the thumbnail): the same edited
    tiles, byte for byte, with the transcoder and with the walk alone."""
    from wsideid.options import DeidOptions
    from wsideid.registry import open_input
    from wsideid.tiff.edits import EditSet, EditStore
    from wsideid.tiff_family.redaction import Edits, plan_regions
    path = str(real("svs/CMU-1-Small-Region.svs"))
    region = (500, 300, 900, 700)

    def edits_made() -> dict:
        slide = open_input(path)
        plan = slide.driver.plan(slide, DeidOptions(regions=[region]))
        edits = Edits(tiles=EditSet(EditStore(path)))
        plan_regions(slide.container, plan, [region], "white", edits)
        return {(k, i): bytes(edits.tiles[k][i]) for k in edits.tiles for i in edits.tiles[k]}

    fast = edits_made()
    monkeypatch.setattr(transcode, "transcoded", lambda *a, **k: None)
    assert edits_made() == fast and len(fast) > 10


def test_adobe_marker_swapped_in_for_libjpeg_only():
    """The copy libjpeg reads says the colour model through one Adobe marker (JFIF dropped);
    everything else, tables and scan included, is the source's."""
    from wsideid.jpeg.markers import with_adobe_transform
    src = tile("420")
    assert b"JFIF" in src[:30]
    for transform in (0, 1, None):
        copy = with_adobe_transform(src, transform)
        a, b = parse(src), parse(copy)
        assert b"JFIF" not in copy[: b.entropy_start]
        assert b.adobe_transform == transform and not b.jfif
        assert copy[b.entropy_start :] == src[a.entropy_start :]
        assert (b.quant, b.dc_tables, b.ac_tables) == (a.quant, a.dc_tables, a.ac_tables)
    with pytest.raises(JpegBlankingError):
        with_adobe_transform(src[:20], 0)


def test_flat_and_transcoded_tiles_build_no_decode_tables(no_walk):
    """The walk's 65536-entry decode tables (tens of ms per table set, once per process) are
    built only when a walk runs: flat tiles and transcoded ones need the codes alone."""
    src = tile("420")
    bl = Blanker(src, "white", None, None, None)
    bl.flat(4)
    from wsideid.jpeg.layout import region_mask
    assert transcode.transcoded(bl, src, None, region_mask(bl.layout, BOXES[0])) is not None
    assert "slots" not in vars(bl)
    assert bl.slots.comp == bl.layout.slots  # and built on demand


def test_large_frame_transcoded_as_the_walk(monkeypatch):
    """A 1024 x 1024 DICOM-sized frame (4:2:0, 24576 blocks) is within the transcoder's bound;
    one past the bound goes to the walk."""
    src = pil_jpeg(texture(1024, 1024, 29), 2)
    boxes = [(300, 200, 500, 700)]
    want = outcome(src, boxes, transcode=False)
    calls = _spy_calls(monkeypatch)
    assert outcome(src, boxes) == want and len(calls) == 1
    monkeypatch.setattr(transcode, "TRANSCODE_MAX_BLOCKS", 24575)
    assert outcome(src, boxes) == want and len(calls) == 1


def _real_tiles(rel: str, count: int = 4) -> tuple[bytes | None, list[bytes]]:
    path = real(rel)
    if rel.endswith(".dcm"):
        pydicom = pytest.importorskip("pydicom")
        from pydicom.encaps import generate_frames
        ds = pydicom.dcmread(path)
        n = int(getattr(ds, "NumberOfFrames", 1))
        frames = [f if f.endswith(b"\xff\xd9") else f.rstrip(b"\x00") for f in generate_frames(ds.PixelData, number_of_frames=n)]
        return None, frames[:: max(1, len(frames) // count)][:count]
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(path) as tif:
        page, fh = tif.pages[0], tif.filehandle
        tiles = []
        for off, n in list(zip(page.dataoffsets, page.databytecounts))[:: max(1, len(page.dataoffsets) // count)][:count]:
            fh.seek(off)
            tiles.append(fh.read(n))
        return page.jpegtables, tiles


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["tiff/large_image_converter_cmu1_small.tiff", "tiff/libvips_subifd_pyramid_cmu1_small.tif",
                                 "svs/openslide-python_small.svs", "dicom/wsi2dcm_jpeg.dcm",
                                 "dicom/mi_multi_frame_jpeg_camelyon_challenge_image.dcm",
                                 "dicom/mi_test_wsi_label_barcodevalue.dcm", "dicom/openslide-python_boxes_0.dcm"])
def test_every_real_jpeg_file_transcoded_as_the_walk(rel, monkeypatch):
    """The other real JPEG tiles and frames here (TIFF conversions of CMU-1, small SVS, DICOM
    from wsi2dcm, a camelyon series, a label, 4:4:4 boxes): all through the transcoder, all
    the walk's bytes."""
    tables, tiles = _real_tiles(rel)
    calls = _spy_calls(monkeypatch)
    made = []
    real_transcoded = transcode.transcoded
    monkeypatch.setattr(transcode, "transcoded", lambda *a: made.append(real_transcoded(*a)) or made[-1])
    for data in tiles:
        h = parse(data, tables)
        boxes = [(h.width // 4, h.height // 4, h.width // 3, h.height // 3)]
        assert outcome(data, boxes, tables=tables) == outcome(data, boxes, tables=tables, transcode=False)
    assert len(calls) == len(tiles) and all(m is not None for m in made)


def test_dc_too_far_from_the_fill_left_to_the_walk(monkeypatch):
    """A source DC value further from the fill than a baseline difference reaches (real 8-bit
    images stay within 2047; shown here with a smaller bound) makes the transcoder refuse."""
    import functools
    src = tile("420")
    want = outcome(src, BOXES[0], transcode=False)
    refused = []
    real_blank = turbo.blank_blocks
    def tight(*a, **k):
        got = functools.partial(real_blank, max_step=10)(*a, **k)
        refused.append(got is None)
        return got
    monkeypatch.setattr(turbo, "blank_blocks", tight)
    assert outcome(src, BOXES[0]) == want and refused == [True]
