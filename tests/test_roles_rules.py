"""The pyramid rule itself (tiff_family/vendors/pyramid.py), and the bounded reader the
detectors use on levels (slide_scan.read_tiff_image)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import role_layouts as L
from wsideid import slide_scan as scanning
from wsideid.tiff import pixels
from wsideid.synth import make_ndpi
from wsideid.tiff_family.vendors.pyramid import Candidate, description_keyword, establish, same_aspect


@pytest.mark.parametrize("w0,h0,w,h,ok", [
    (2220, 2967, 574, 768, True),     # CMU-1's thumbnail
    (4443, 3567, 2221, 1783, True),   # TCGA level 1 (floor)
    (300, 250, 37, 31, True),         # boxes.tiff level 3
    (16, 16, 16, 16, True),
    (1024, 768, 1200, 400, False),    # a macro
    (1024, 768, 400, 400, False),     # a square label
    (1024, 768, 512, 370, False),     # 4 % off
])
def test_same_aspect(w0, h0, w, h, ok):
    assert same_aspect(w0, h0, w, h) is ok


def test_establish_walks_down_from_the_full_resolution_image():
    cands = [Candidate(0, 400, 300), Candidate(1, 1024, 768), Candidate(2, 512, 384),
             Candidate(3, 512, 384), Candidate(4, 256, 192, "NewSubfileType 0, not 1"), Candidate(5, 128, 96)]
    got = establish(cands, 1)
    assert got[1] is None and got[2] is None and got[5] is None
    assert "before the full-resolution" in got[0]
    assert "not smaller" in got[3]
    assert got[4] == "NewSubfileType 0, not 1"


def test_a_vetoed_full_resolution_image_establishes_nothing():
    got = establish([Candidate(0, 100, 100, "its description says 'label'"), Candidate(1, 50, 50)], 0)
    assert got[0] == "its description says 'label'" and "not established" in got[1]


@pytest.mark.parametrize("text,kw", [
    ("Aperio Image Library v11\r\nlabel 387x463", "label"), ("Label_Image", None), ("Label Image", "label"),
    ("level=0 mag=40", None), ("macro 1280x431", "macro"), ('<OME><Image Name="label"/></OME>', None),
    ('{"label": 1}', None), ("Thumbnail", "thumbnail"),
])
def test_description_keyword(text, kw):
    assert description_keyword(text) == kw


def test_bif_underscore_label_is_caught_by_its_subfile_type(tmp_path):
    """'Label_Image' has no word boundary before '_': the NewSubfileType 0 rule catches it."""
    from wsideid.pipeline import inspect
    src = tmp_path / "b.tif"
    L.bif_like(str(src))
    assert "NewSubfileType 0" in inspect(src).images[1].rule


def test_reader_reduces_a_large_tiled_level_tile_by_tile(tmp_path, monkeypatch):
    src = tmp_path / "t.tif"
    base = L.tissue()
    tifffile.imwrite(src, base, tile=(128, 128), photometric="rgb", compression="zlib")
    monkeypatch.setattr(pixels, "MAX_SCAN_PIXELS", 50_000)  # 1024x768 -> every 4th pixel
    img = np.asarray(scanning.read_tiff_image(str(src), 0))
    np.testing.assert_array_equal(img, base[::4, ::4])


def test_reader_reduces_an_ndpi_level(tmp_path, monkeypatch):
    """NDPI levels are one JPEG strip: tifffile splits it at its restart markers,
    OpenSlide reads it in squares; both give the reduced level."""
    src = tmp_path / "s.ndpi"
    make_ndpi(str(src))
    with tifffile.TiffFile(src) as t:
        full = t.pages[0].asarray()
    monkeypatch.setattr(pixels, "MAX_SCAN_PIXELS", 200_000)  # 2048x1536 -> every 4th pixel
    ref = full[::4, ::4]
    for img in (np.asarray(scanning.read_tiff_image(str(src), 0)),
                pixels._reduced_openslide(str(src), 2048, 1536, 4)):
        assert img.shape == ref.shape
        assert np.abs(img.astype(int) - ref.astype(int)).mean() < 4  # two JPEG decoders


def test_residual_targets_skip_only_the_full_resolution_level(tmp_path):
    from wsideid.pipeline import inspect
    src = tmp_path / "svs.svs"
    L.svs_tiled_label(str(src))
    plan = inspect(src)
    kept = [d.image.index for d in plan.images if d.action != "remove"]
    from wsideid.drivers.tiff import _residual_targets
    targets = _residual_targets(plan, {s: o for o, s in enumerate(kept)})
    assert targets == [("thumbnail", 1), ("level", 2)]
    assert scanning.source_targets(plan) == [("unknown", 3)]


def test_reader_memory_stays_flat_on_a_large_level(tmp_path):
    """A 113 MP level (340 MB decoded) is scanned in well under that: measured in a child process."""
    import subprocess
    import sys
    import textwrap
    src = tmp_path / "big.tif"
    w, h, t = 12288, 9216, 256
    tile = np.random.default_rng(0).integers(0, 255, (t, t, 3)).astype(np.uint8)
    tifffile.imwrite(src, (tile for _ in range((w // t) * (h // t))), shape=(h, w, 3), dtype="uint8",
                     tile=(t, t), photometric="rgb", compression="jpeg")
    code = textwrap.dedent(f"""
        import resource
        from wsideid import slide_scan as scanning
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        im = scanning.read_tiff_image({str(src)!r}, 0)
        print(im.size[0], im.size[1], (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": __import__("os").pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    iw, ih, grew_mb = (int(v) for v in out.stdout.split())
    assert (iw, ih) == (w // 4, h // 4) and iw * ih <= pixels.MAX_SCAN_PIXELS
    assert grew_mb < 100, f"reading grew the process by {grew_mb} MB"
