"""Shared helpers for the JPEG blanking tests.

Synthetic JPEGs come from Pillow and the libjpeg-turbo command-line tools;
the independent check decodes with ``djpeg -nosmooth`` (no fancy
upsampling, so every pixel depends only on its own MCU).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"

HAVE_TOOLS = all(shutil.which(t) for t in ("cjpeg", "djpeg", "jpegtran"))
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="libjpeg-turbo-progs not installed")


def shared_file(rel: str) -> Path:
    """Path of a shared real-data file, or skip the test when absent."""
    p = TESTDATA / rel
    if not p.exists():
        pytest.skip(f"{rel} not available (../shared/testdata)")
    return p


def texture(w: int, h: int, seed: int = 0, grey: bool = False) -> np.ndarray:
    """Deterministic image with edges, gradients and noise (all DC/AC sizes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = 128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    g = (xx * 255 // max(w - 1, 1)).astype(float)
    b = np.where(((xx // 13) + (yy // 9)) % 2 == 0, 30.0, 220.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    if grey:
        return img[..., 0]
    return img


def pil_jpeg(img: np.ndarray, subsampling: int = 0, optimize: bool = False, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(
        buf, "JPEG", quality=kw.pop("quality", 90), subsampling=subsampling, optimize=optimize, **kw
    )
    return buf.getvalue()


def pnm(img: np.ndarray) -> bytes:
    h, w = img.shape[:2]
    magic = b"P5" if img.ndim == 2 else b"P6"
    return magic + b"\n%d %d\n255\n" % (w, h) + img.tobytes()


def run_tool(args: list[str], data: bytes) -> tuple[bytes, bytes]:
    p = subprocess.run(args, input=data, capture_output=True, timeout=60, check=False)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout, p.stderr


def cjpeg(img: np.ndarray, *args: str) -> bytes:
    return run_tool(["cjpeg", "-quality", "90", *args], pnm(img))[0]


def djpeg(data: bytes) -> tuple[np.ndarray, bytes]:
    """Decode with djpeg -nosmooth; returns (pixels, stderr warnings)."""
    out, err = run_tool(["djpeg", "-nosmooth", "-pnm"], data)
    im = Image.open(io.BytesIO(out))
    return np.asarray(im), err


def split_abbreviated(data: bytes) -> tuple[bytes, bytes]:
    """Split a full JPEG into (JPEGTables, abbreviated tile) as TIFF does."""
    tables = [b"\xff\xd8"]
    tile = [b"\xff\xd8"]
    pos = 2
    while True:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        seg = data[pos : pos + 2 + length]
        if marker in (0xDB, 0xC4):
            tables.append(seg)
        elif marker == 0xDA:
            tile.append(data[pos:])
            break
        else:
            tile.append(seg)
        pos += 2 + length
    tables.append(b"\xff\xd9")
    return b"".join(tables), b"".join(tile)


def splice(tables: bytes | None, tile: bytes) -> bytes:
    """Full stream from an abbreviated tile: SOI + tables + tile body."""
    if tables is None:
        return tile
    return b"\xff\xd8" + tables[2:-2] + tile[2:]


def grown_mask(shape: tuple[int, int], boxes, mcu: tuple[int, int], extra: int = 0) -> np.ndarray:
    """Pixel mask of the boxes grown to MCU boundaries (plus ``extra`` MCUs)."""
    h, w = shape
    mw, mh = mcu
    m = np.zeros((h, w), dtype=bool)
    for x, y, bw, bh in boxes:
        x0 = max(0, (x // mw - extra) * mw)
        y0 = max(0, (y // mh - extra) * mh)
        x1 = -(-(x + bw) // mw) * mw + extra * mw
        y1 = -(-(y + bh) // mh) * mh + extra * mh
        m[y0:y1, x0:x1] = True
    return m


def check_blank(src: bytes, out: bytes, boxes, mcu, fill=None, tables=None, tol=2):
    """Assert the blanking contract with djpeg as the independent decoder.

    (a) pixels outside the MCU-grown region are identical, (b) the region
    is the fill colour within ``tol`` (when ``fill`` is given), (c) djpeg
    prints no warning.
    """
    a, err_a = djpeg(splice(tables, src))
    b, err_b = djpeg(splice(tables, out))
    assert err_a == b""
    assert err_b == b"", err_b
    assert a.shape == b.shape
    region = grown_mask(a.shape[:2], boxes, mcu)
    outside = ~region
    assert np.array_equal(a[outside], b[outside])
    if fill is not None and region.any():
        got = b[region].astype(int)
        want = np.array(fill if a.ndim == 3 else fill[:1], dtype=int)
        assert np.abs(got - want).max() <= tol, np.abs(got - want).max()
    return a, b, region


# name -> how to make it; built once per session by ``variant``.
VARIANTS = {
    "444": lambda: pil_jpeg(texture(203, 151, 1), 0),
    "422": lambda: pil_jpeg(texture(203, 151, 2), 1),
    "420": lambda: pil_jpeg(texture(203, 151, 3), 2),
    "444opt": lambda: pil_jpeg(texture(160, 120, 4), 0, optimize=True),
    "420opt": lambda: pil_jpeg(texture(160, 120, 5), 2, optimize=True),
    "grey": lambda: pil_jpeg(texture(131, 77, 6, grey=True)),
    "greyopt": lambda: pil_jpeg(texture(131, 77, 7, grey=True), optimize=True),
    "rst420rows": lambda: cjpeg(texture(200, 150, 8), "-sample", "2x2", "-restart", "1"),
    "rst444mcus": lambda: cjpeg(texture(150, 100, 9), "-sample", "1x1", "-restart", "5B", "-optimize"),
    "rst_jpegtran": lambda: run_tool(
        ["jpegtran", "-restart", "2", "-optimize"], pil_jpeg(texture(170, 130, 10), 2)
    )[0],
    "rgb": lambda: cjpeg(texture(120, 90, 11), "-rgb"),
    "odd_sampling": lambda: cjpeg(texture(150, 110, 12), "-sample", "2x2,1x2,2x1"),
    "440": lambda: cjpeg(texture(96, 80, 13), "-sample", "1x2,1x1,1x1", "-restart", "2B"),
}

# MCU size of each variant in pixels.
MCU = {
    "444": (8, 8), "422": (16, 8), "420": (16, 16), "444opt": (8, 8), "420opt": (16, 16),
    "grey": (8, 8), "greyopt": (8, 8), "rst420rows": (16, 16), "rst444mcus": (8, 8),
    "rst_jpegtran": (16, 16), "rgb": (8, 8), "odd_sampling": (16, 16), "440": (8, 16),
}  # fmt: skip

_cache: dict[str, bytes] = {}


def variant(name: str) -> bytes:
    if name not in _cache:
        _cache[name] = VARIANTS[name]()
    return _cache[name]


def rst_offsets(data: bytes) -> list[int]:
    """McuStarts of a restart-marked JPEG: entropy start, then after each RST."""
    from wsideid.jpeg.markers import parse

    hdr = parse(data)
    starts = [hdr.entropy_start]
    pos = hdr.entropy_start
    while True:
        i = data.find(b"\xff", pos, hdr.entropy_end)
        if i < 0:
            return starts
        if 0xD0 <= data[i + 1] <= 0xD7:
            starts.append(i + 2)
        pos = i + 2
