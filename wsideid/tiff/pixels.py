"""Pixels of one TIFF-family image for the PHI detectors, read in bounded memory.

Why here, beside the container: which image index is which IFD (top-level,
then SubIFD images) is the container's knowledge; the detectors only ask
"image ``index`` of this file, at most ``budget.MAX_SCAN_PIXELS`` pixels".
An image up to that size is decoded whole; a larger one (a mid-resolution
level, a big macro pyramid) is read tile by tile, or through OpenSlide in
2048-pixel squares, and reduced by a power of two until it fits, so memory
stays flat whatever the slide's size. Text that only shows at full
resolution of such a level is also in the smaller levels, which are
scanned too.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from .. import budget
from ..errors import WsideidError

MAX_SCAN_PIXELS = budget.MAX_SCAN_PIXELS  # a module global: tests lower it
_CHUNK = 2048


# Kept images are scanned by the residual detectors, which read text lines at
# most ~1280 px wide anyway (detect/residual.py): decoding them at 16 MP cost
# 44 MB of RGB (plus a copy) for nothing, and it ran beside the copy and the
# verification. ``scan_limit`` lowers the budget for the images a thread reads.
OUTPUT_SCAN_PIXELS = 4_000_000
_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("scan_limit", default=None)


@contextlib.contextmanager
def scan_limit(pixels: int):
    """Read images in this thread at most ``pixels`` large (and never above MAX_SCAN_PIXELS)."""
    token = _LIMIT.set(pixels)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _factor(w: int, h: int) -> int:
    limit = min(MAX_SCAN_PIXELS, _LIMIT.get() or MAX_SCAN_PIXELS)
    f = 1
    while (w // f) * (h // f) > limit:
        f *= 2
    return f


def _to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] > 3:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
    return arr


def _reduced_tiles(page, w: int, h: int, f: int) -> np.ndarray:
    """A tiled page read one tile at a time, every ``f``-th pixel kept."""
    spp = page.samplesperpixel
    out = np.zeros((-(-h // f), -(-w // f)) + ((spp,) if spp > 1 else ()), dtype=page.dtype)
    for seg, idx, _shape in page.segments(maxworkers=1, buffersize=1 << 20):  # 8 MB read ahead cost 8 MB (issue 17)
        if seg is None:
            continue
        y, x = idx[-3], idx[-2]
        tile = seg[0][: h - y, : w - x]
        # keep the pixels on the global grid (y, x multiples of f)
        oy, ox = (-y) % f, (-x) % f
        part = tile[oy::f, ox::f]
        ty, tx = (y + oy) // f, (x + ox) // f
        out[ty:ty + part.shape[0], tx:tx + part.shape[1]] = part.reshape(part.shape[:2] + out.shape[2:])
    return out


def _reduced_openslide(path: str, w: int, h: int, f: int) -> np.ndarray | None:
    """A level OpenSlide shows (NDPI levels are one huge strip), read in squares."""
    import openslide
    try:
        slide = openslide.OpenSlide(path)
    except Exception:  # noqa: BLE001 - not an OpenSlide level: the caller says so
        return None
    try:
        if (w, h) not in slide.level_dimensions:
            return None
        level = slide.level_dimensions.index((w, h))
        ds = slide.level_downsamples[level]
        out = np.zeros((-(-h // f), -(-w // f), 3), np.uint8)
        for y in range(0, h, _CHUNK):
            for x in range(0, w, _CHUNK):
                cw, ch = min(_CHUNK, w - x), min(_CHUNK, h - y)
                part = np.asarray(slide.read_region((int(x * ds), int(y * ds)), level, (cw, ch)))[::f, ::f, :3]
                out[y // f:y // f + part.shape[0], x // f:x // f + part.shape[1]] = part
        return out
    finally:
        slide.close()


def read_tiff_image(path: str, index: int):
    """Image ``index`` (of ``TiffFile.image_ifds()``: top-level IFDs, then SubIFD
    images) as a PIL image of at most MAX_SCAN_PIXELS, read in bounded memory."""
    import tifffile
    from PIL import Image

    from .container import read_tiff
    tf = read_tiff(path)
    images = tf.image_ifds()
    if not 0 <= index < len(images):
        raise WsideidError(f"image {index} is not in the file")
    ifd = images[index]
    with tifffile.TiffFile(path) as t:
        if index < len(tf.ifds):
            page = t.pages[index]
        else:  # a SubIFD image: tifffile reads a page wherever its IFD lies
            t.filehandle.seek(ifd.offset)
            page = tifffile.TiffPage(t, index=0)
        h, w = page.shape[:2] if page.planarconfig != 2 or page.samplesperpixel == 1 else page.shape[1:3]
        f = _factor(w, h)
        if f == 1:
            arr = page.asarray()
        elif page.is_tiled and (page.planarconfig == 1 or page.samplesperpixel == 1):
            arr = _reduced_tiles(page, w, h, f)
        else:
            arr = None
    if arr is None:
        arr = _reduced_openslide(path, w, h, f)
        if arr is None:
            raise WsideidError(f"image {index} ({w}x{h}) is too large to decode whole and cannot be read in parts")
    return Image.fromarray(_to_uint8_rgb(arr))
