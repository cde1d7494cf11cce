"""Pixels of one TIFF-family image for the PHI detectors, read in bounded memory.

Why here, beside the container: which image index is which IFD (top-level,
then SubIFD images) is the container's knowledge; the detectors only ask
"image ``index`` of this file, at most ``budget.MAX_SCAN_PIXELS`` pixels".
An image up to that size is decoded whole; a larger one (a mid-resolution
level, a big macro pyramid) is read tile by tile, or through OpenSlide in
2048-pixel squares, and reduced by a power of two until it fits, so memory
stays flat whatever the slide's size. JPEG tiles are decoded already reduced
(libjpeg's 1/2, 1/4, 1/8 IDCT scaling): each pixel is its block's mean, and
the level costs its Huffman decoding instead of a full decode. Text that only shows at full
resolution of such a level is also in the smaller levels, which are
scanned too.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import io
import os

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
# The residual detectors then reduce what they are given to a longest side (detect.residual
# MAX_LONG_SIDE) by a whole factor. A JPEG-tiled level can be decoded at that size directly
# (libjpeg's 1/4 instead of 1/2, then a box reduction by 2): same size, each pixel the mean
# of the same block, a quarter of the colour conversion and no 11 MB image at 1920 px
# (issue 14). ``detector_side`` says so; the image then carries the size it stands for.
_SIDE: contextvars.ContextVar[int | None] = contextvars.ContextVar("detector_side", default=None)
READ_AT = "wsideid.read_at"  # PIL ``info`` key: (w, h) of the scan-limit read this image is a reduction of


@contextlib.contextmanager
def scan_limit(pixels: int):
    """Read images in this thread at most ``pixels`` large (and never above MAX_SCAN_PIXELS)."""
    token = _LIMIT.set(pixels)
    try:
        yield
    finally:
        _LIMIT.reset(token)


@contextlib.contextmanager
def detector_side(long_side: int):
    """Images read in this thread go to detectors that reduce them by ``ceil(longest /
    long_side)``: a reader that can decode one at that size directly may (``READ_AT``)."""
    token = _SIDE.set(long_side)
    try:
        yield
    finally:
        _SIDE.reset(token)


def detector_reduction(w: int, h: int) -> int:
    """The whole factor the detectors reduce a ``w`` x ``h`` read by (1: none, or no
    ``detector_side`` set). One formula for the reader and ``detect.residual.reduce_kept``."""
    side = _SIDE.get()
    return -(-max(w, h) // side) if side else 1


def scan_factor(w: int, h: int, limit: int | None = None) -> int:
    """``reduction_factor`` at the thread's scan budget: the smallest of ``limit``, the thread's
    ``scan_limit`` and MAX_SCAN_PIXELS. One function for every format's reader, so a kept DICOM
    instance is read no larger than a kept TIFF image."""
    return reduction_factor(w, h, min(x for x in (MAX_SCAN_PIXELS, limit, _LIMIT.get()) if x))


def reduction_factor(w: int, h: int, limit: int) -> int:
    """The power of two a ``w`` x ``h`` image is reduced by to hold at most ``limit`` pixels
    (read as ``ceil(w / f)`` x ``ceil(h / f)``, as the readers build it: every ``f``-th pixel
    from the first); ``level_cover`` predicts scan sizes with it."""
    f = 1
    while -(-w // f) * -(-h // f) > limit:
        f *= 2
    return f


_BAND_VALUES = 1 << 20  # samples converted at a time: the wide intermediate is 8 MB, never the image


def to_uint8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``arr`` mapped linearly from [lo, hi] to 0..255 (clipped, rounded down), a band of rows
    at a time. Why in bands: the wide intermediate (int64, or float64 for float samples) of a
    whole 16 MP 16-bit RGB image was ~380 MB; a band is 8 MB. Integer samples use integer
    arithmetic, so no float copy is made of them at all."""
    out = np.zeros(arr.shape, np.uint8)
    if hi <= lo or not arr.size:
        return out
    exact = arr.dtype.kind in "iub" and arr.dtype.itemsize <= 4 and float(lo).is_integer() and float(hi).is_integer()
    step = max(1, _BAND_VALUES // max(1, arr[0].size)) if arr.ndim > 1 else _BAND_VALUES
    for a in range(0, arr.shape[0], step):
        band = arr[a:a + step]
        if exact:
            v = band.astype(np.int64)
            v -= int(lo)
            np.clip(v, 0, int(hi - lo), out=v)
            v *= 255
            v //= int(hi - lo)
        else:
            v = (band.astype(np.float64) - lo) * (255.0 / (hi - lo))
            np.clip(v, 0, 255, out=v)
        out[a:a + step] = v
    return out


def _to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] > 3:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = to_uint8(arr, 0, max(1, arr.max().item()))
    return arr


def to_rgb8(arr: np.ndarray, bits: int = 8) -> np.ndarray:
    """A decoded segment as uint8 RGB on a fixed scale (``bits`` per sample): windows of one
    image compare with each other, as a per-window stretch would not."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] > 3:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        return to_uint8(arr, 0.0, 1.0)
    return to_uint8(arr, 0, max(1, (1 << min(bits, 32)) - 1))


def tifffile_page(t, path: str, index: int, tf=None):
    """tifffile's page for image ``index`` of ``TiffFile.image_ifds()`` (top-level IFDs, then
    SubIFD images): tifffile reads a page wherever its IFD lies. ``tf``: the file already
    parsed by our container (a caller reading several images parses it once)."""
    import tifffile

    from .container import read_tiff
    tf = tf if tf is not None else read_tiff(path)
    images = tf.image_ifds()
    if not 0 <= index < len(images):
        raise WsideidError(f"image {index} is not in the file")
    if index < len(tf.ifds):
        return t.pages[index]
    t.filehandle.seek(images[index].offset)  # a SubIFD image
    return tifffile.TiffPage(t, index=0)


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


# JPEG decoders can scale by 1/2, 1/4 or 1/8 inside the IDCT (T.81 gives each 8x8 block's
# mean in its DC coefficient): a reduced level costs its Huffman decoding and little else,
# and each output pixel is the mean of the pixels it stands for instead of one of them.
_DCT_SCALES = (8, 4, 2)
JPEG_COMPRESSION = 7


def _scalable_jpeg(page, f: int) -> bool:
    """Whether ``page``'s tiles can be decoded at 1/``min(f, 8)`` and placed on the reduced grid."""
    return (f >= 2 and page.is_tiled and page.compression == JPEG_COMPRESSION and not page.is_ndpi
            and page.planarconfig == 1 and page.bitspersample == 8 and page.tiledepth == 1
            and (page.samplesperpixel, page.photometric) in ((1, 1), (3, 2), (3, 6))
            and page.tilewidth % f == 0 and page.tilelength % f == 0)


def _libjpeg_takes_rgb(im) -> bool:
    """Whether libjpeg will take a 3-component stream for RGB rather than YCbCr (T.81 names
    no colour space; this is libjpeg's rule: JFIF, then Adobe's transform flag, then the
    component ids 'R', 'G', 'B')."""
    if "jfif" in im.info:
        return False
    if "adobe" in im.info:
        return im.info.get("adobe_transform") == 0
    return tuple(layer[0] for layer in im.layer) == (82, 71, 66)


def _jpeg_tile_scaled(raw: bytes, tables: bytes | None, photometric: int, size: tuple[int, int], f: int) -> np.ndarray:
    """One abbreviated or complete JPEG tile, decoded at 1/``min(f, 8)`` by libjpeg (Pillow's
    draft mode), then box-reduced by what remains of ``f``.

    The colour space follows tifffile's reading of the tag (``jpeg_decode_colorspace``):
    Photometric RGB without a JFIF marker is RGB data (Aperio), decoded without a colour
    transform even where libjpeg's own rule would take it for YCbCr."""
    import io

    from PIL import Image
    if tables is not None and len(tables) > 4 and raw[:2] == b"\xff\xd8":
        raw = tables[:-2] + raw[2:]  # the tables' segments, then the tile's (one SOI, one EOI)
    im = Image.open(io.BytesIO(raw))
    if im.format != "JPEG":
        raise WsideidError("a JPEG tile does not hold a JPEG stream")
    if im.size != size:
        raise WsideidError(f"a JPEG tile is {im.size[0]}x{im.size[1]} px, not the {size[0]}x{size[1]} of its image")
    d = next(s for s in _DCT_SCALES if f % s == 0)
    want = (size[0] // d, size[1] // d)
    mode = "L" if photometric == 1 else "RGB"
    if photometric == 2 and "jfif" not in im.info and not _libjpeg_takes_rgb(im):
        mode = "YCbCr"  # no transform: the samples are R, G, B already
    im.draft(mode, want)
    if im.size != want:
        raise WsideidError(f"a JPEG tile did not decode at 1/{d}")
    arr = np.asarray(im)
    r = f // d
    if r > 1:  # the rest of the factor: a box mean over r x r
        h, w = arr.shape[:2]
        arr = arr.reshape((h // r, r, w // r, r) + arr.shape[2:]).mean(axis=(1, 3)).astype(np.uint8)
    return arr


def _reduced_jpeg_tiles(path: str, page, w: int, h: int, f: int) -> np.ndarray:
    """A JPEG-tiled page decoded tile by tile at a reduced scale (see ``_jpeg_tile_scaled``)."""
    spp = page.samplesperpixel
    out = np.zeros((-(-h // f), -(-w // f)) + ((spp,) if spp > 1 else ()), dtype=np.uint8)
    for y, x, part in _scaled_jpeg_parts(path, page, w, h, f):
        out[y:y + part.shape[0], x:x + part.shape[1]] = part
    return out


def _reduced_jpeg_image(path: str, page, w: int, h: int, f: int):
    """``_reduced_jpeg_tiles`` pasted straight into a PIL image: no array of the whole image
    beside it (at 4 MP that array was 11 MB more at the read's peak, issue 14)."""
    from PIL import Image
    img = Image.new("L" if page.samplesperpixel == 1 else "RGB", (-(-w // f), -(-h // f)))
    for y, x, part in _scaled_jpeg_parts(path, page, w, h, f):
        img.paste(Image.fromarray(np.ascontiguousarray(part)), (x, y))
    return img


def _detector_jpeg_image(path: str, page, w: int, h: int, f: int, r: int):
    """The image read at ``f`` (``ceil(w / f)`` x ``ceil(h / f)``) reduced by the detectors'
    ``r``, decoded at ``f * r`` directly, marked with ``READ_AT``: the size it stands for."""
    img = _reduced_jpeg_image(path, page, w, h, f * r)
    img.info[READ_AT] = (-(-w // f), -(-h // f))
    return img


def _scaled_jpeg_parts(path: str, page, w: int, h: int, f: int):
    """(y, x, pixels) of each tile decoded at 1/``f``, placed on the reduced grid and cut to it."""
    tw, th = page.tilewidth, page.tilelength
    tables = page.jpegtables
    across = -(-w // tw)
    ow, oh = -(-w // f), -(-h // f)
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        for i, (off, n) in enumerate(zip(page.dataoffsets, page.databytecounts)):
            if not n:
                continue  # a missing tile reads as zeros, as tifffile gives it
            raw = os.pread(fd, int(n), int(off))
            if len(raw) != n:
                raise WsideidError("image data ended early while reading a tile")
            part = _jpeg_tile_scaled(raw, tables, page.photometric, (tw, th), f)
            y, x = (i // across) * th // f, (i % across) * tw // f
            part = part[: max(oh - y, 0), : max(ow - x, 0)]
            if part.size:
                yield y, x, part


def _reduced_openslide(path: str, w: int, h: int, f: int) -> np.ndarray | None:
    """A level OpenSlide shows (NDPI levels are one huge strip), read in squares."""
    from ..openslide_guard import open_slide
    try:
        slide = open_slide(path)  # (a file that crashes OpenSlide is not opened in this process)
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
    images) as a PIL image of at most MAX_SCAN_PIXELS, read in bounded memory.

    tifffile always parses the file's first page, the full-resolution level, whose tile
    offsets and byte counts it holds as tuples of Python ints (~64 B a tile), in objects
    that refer to each other: closed, they wait for the cycle collector, which ran late
    enough that they were still there when verification began (4.2 MB on the 1.71 GB bench
    slide, 8 MB at 3.4 GB: the run's peak grew with the slide). They are collected here."""
    try:
        return _read_tiff_image(path, index)
    finally:
        gc.collect()


class _FirstIfdAt(io.RawIOBase):
    """A file read as it is, but for its header, whose first-IFD pointer names another IFD.

    Why: tifffile parses the first page of any file it opens in full, the full-resolution
    level, whose tile offsets and counts it holds as tuples of Python ints (~80 bytes a tile:
    35 MB for the 430 000 tiles of a 12 GB slide, read for each thumbnail, label or level the
    residual scan decodes). Shown the image wanted as the first page, it never parses the level."""

    def __init__(self, path: str, head: bytes):
        self._f = open(path, "rb")  # noqa: SIM115 - closed with this stream
        self._head = head
        self.name = path

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, b) -> int:
        pos = self._f.tell()
        n = self._f.readinto(b)
        if n and pos < len(self._head):
            k = min(n, len(self._head) - pos)
            memoryview(b).cast("B")[:k] = self._head[pos:pos + k]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def _opened_page(path: str, index: int):
    """(tifffile's page for image ``index``): classic and BigTIFF files are shown to tifffile with
    that image as their first page (``_FirstIfdAt``); NDPI and image 0 as they are."""
    import tifffile

    from .container import read_tiff
    from .writer import header_bytes
    tf = read_tiff(path)
    images = tf.image_ifds()
    if index and 0 < index < len(images) and tf.kind in ("classic", "bigtiff"):
        head = header_bytes(tf.kind, tf.byteorder, images[index].offset)
        del tf, images  # their tile tables are what this spares
        with io.BufferedReader(_FirstIfdAt(path, head), 1 << 16) as stream, tifffile.TiffFile(stream) as t:
            yield t.pages[0]
        return
    with tifffile.TiffFile(path) as t:
        yield tifffile_page(t, path, index, tf)


def _read_tiff_image(path: str, index: int):
    from PIL import Image
    with _opened_page(path, index) as page:
        h, w = page.shape[:2] if page.planarconfig != 2 or page.samplesperpixel == 1 else page.shape[1:3]
        f = scan_factor(w, h)
        r = detector_reduction(-(-w // f), -(-h // f))
        if r > 1 and r & (r - 1) == 0 and _scalable_jpeg(page, f * r):
            return _detector_jpeg_image(path, page, w, h, f, r)
        if f == 1:
            arr = page.asarray()
        elif _scalable_jpeg(page, f):
            return _reduced_jpeg_image(path, page, w, h, f)
        elif page.is_tiled and (page.planarconfig == 1 or page.samplesperpixel == 1):
            arr = _reduced_tiles(page, w, h, f)
        else:
            arr = None
    if arr is None:
        arr = _reduced_openslide(path, w, h, f)
        if arr is None:
            raise WsideidError(f"image {index} ({w}x{h}) is too large to decode whole and cannot be read in parts")
    return Image.fromarray(_to_uint8_rgb(arr))
