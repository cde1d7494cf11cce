"""Barcode decoding on label and macro images.

zxing-cpp is the main reader: it is the only one here that reads DataMatrix,
the usual slide-label symbology. pyzbar (libzbar) is a second opinion for
1D codes and QR, which it sometimes reads where zxing gives up.

Real labels are small, blurred, JPEG-damaged and turned, so decoding runs as
a ladder of passes from cheap (whole image, native size) to expensive
(upscaled overlapping crops, other binariser, other reader). The ladder
stops at the first rung that finds anything: a clean label costs one or two
zxing calls (a few ms), and the long tail is only paid for hard images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import zxingcpp
from PIL import Image

from ._geometry import Renders, View, full_view, tiles
from .findings import Box

# Symbologies met on slide labels (plus retail 1D for distractors). Reading
# every format zxing knows costs time and invites false positives on text.
_ZX_FORMATS = zxingcpp.barcode_formats_from_str(
    "DataMatrix,QRCode,MicroQRCode,Code128,Code39,Code93,Codabar,PDF417,Aztec,"
    "EAN13,EAN8,UPCA,UPCE,ITF,DataBar"
)

# pyzbar type name -> zxing-style name, so duplicates collapse across readers.
_ZBAR_NAMES = {
    "QRCODE": "QRCode",
    "CODE128": "Code128",
    "CODE39": "Code39",
    "CODE93": "Code93",
    "CODABAR": "Codabar",
    "EAN13": "EAN13",
    "EAN8": "EAN8",
    "UPCA": "UPCA",
    "UPCE": "UPCE",
    "I25": "ITF",
    "PDF417": "PDF417",
}
# zbar's DataBar decoder prints an assertion warning to stderr (fd 2, two lines per row) on
# images of repeated tiles (hostile soak, svs tile-all-same: 230 lines): a failure must be
# one line. zxing reads DataBar, so zbar is asked only for the symbologies above.
_ZBAR_SYMBOLS = tuple(_ZBAR_NAMES)

# Below this longest side an image is treated as a low-resolution label
# (e.g. cut from a macro) and codes are upscaled before decoding.
SMALL_SIDE = 700


@dataclass(frozen=True)
class BarcodeHit:
    """One decoded symbol, box in the caller's pixel coordinates."""

    symbology: str
    value: str
    box: Box
    reader: str  # zxing | pyzbar


@dataclass(frozen=True)
class Decoded:
    """The codes already decoded on an image of ``size`` px (a DICOM overview's, read at plan
    time to place its label): a scan of the same pixels takes them instead of decoding again."""

    size: tuple[int, int]
    hits: tuple[BarcodeHit, ...]


Reader = Callable[[Image.Image, View], list[BarcodeHit]]


def _zxing(binarizer: zxingcpp.Binarizer, downscale: bool = True) -> Reader:
    """zxing with ``binarizer``; ``downscale=False`` for an upscaled view (zxing's own
    downscaled passes would only undo the upscaling)."""
    def read(view_img: Image.Image, view: View) -> list[BarcodeHit]:
        hits = []
        arr = np.asarray(view_img)
        for b in zxingcpp.read_barcodes(arr, formats=_ZX_FORMATS, binarizer=binarizer, try_downscale=downscale):
            if not b.valid or not b.text:
                continue
            p = b.position
            corners = [(q.x, q.y) for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
            hits.append(BarcodeHit(b.format.name, b.text, view.box_to_source(corners), "zxing"))
        return hits

    return read


def _pyzbar(view_img: Image.Image, view: View) -> list[BarcodeHit]:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError):  # libzbar missing: zxing alone still runs
        return []
    hits = []
    for s in pyzbar.decode(view_img, symbols=[pyzbar.ZBarSymbol[k] for k in _ZBAR_SYMBOLS]):
        name = _ZBAR_NAMES.get(s.type)
        if name is None:
            continue
        try:
            value = s.data.decode("utf-8")
        except UnicodeDecodeError:
            value = s.data.decode("latin-1")
        if not value:
            continue
        pts = [(pt.x, pt.y) for pt in s.polygon] or [
            (s.rect.left, s.rect.top),
            (s.rect.left + s.rect.width, s.rect.top + s.rect.height),
        ]
        hits.append(BarcodeHit(name, value, view.box_to_source(pts), "pyzbar"))
    return hits


_ZX_LOCAL = _zxing(zxingcpp.Binarizer.LocalAverage)
_ZX_GLOBAL = _zxing(zxingcpp.Binarizer.GlobalHistogram)
_ZX_LOCAL_UP = _zxing(zxingcpp.Binarizer.LocalAverage, downscale=False)

# Kept images (thumbnail, macro, a reduced level: detect/residual.py) have their own ladder.
# Such an image is a reduction of a large picture, so a code on it is small (modules of 1-2
# px) whatever the image's size: upscaled whole views find it, where the label ladder's
# size rule (upscale only below SMALL_SIDE) never upscales a 768 px thumbnail and its
# sharpened-1x, pyzbar, crop and turn rungs find little. Measured on codes planted in
# tissue images (bench/bench_residual_codes.py, bench/README.md "Session 6"): of 41 codes
# the plain whole-image rungs missed, a sharpened 2x view found 23, a plain 2x view 23,
# crops 16, sharpening at 1x 2, pyzbar 5, quarter turns 0 (zxing turns 1D codes itself),
# a 3x view 27, all together 29; on the harsh stress set (80 missed) sharpened 2x found
# 27, plain 2x 12, crops 14, 3x 17, all together 31.
KEPT_CORE_RUNGS = 3  # always run: plain, other binariser, 2x plain and sharpened (12 + 7 + 50-95 ms, 768 px)
# Upscaled views hold at most this many pixels (the scale is lowered to fit): a view costs
# ~5 B a pixel at its peak (itself, zxing's copy and binarised planes) and ~4x a plain
# view's CPU, and the residual scan runs beside the copy in a process allowed 100 MB. A
# 768 px thumbnail's 2x view (2.36 MP, ~12 MB) fits; a 960 px level is viewed at 1.6x (its
# 3.7 MP 2x view peaked at +29 MB; as 2x2 crops it cost 1.6x the CPU of the whole level).
KEPT_VIEW_PIXELS = 2_400_000


def _upscale_for(size: tuple[int, int]) -> list[float]:
    """Extra scales worth trying for an image of ``size``."""
    longest = max(size)
    if longest < SMALL_SIDE // 2:
        return [2.0, 3.0]
    if longest < SMALL_SIDE:
        return [2.0]
    return [0.5] if longest > 2500 else []


def _ladder(gray: Image.Image, use_pyzbar: bool) -> Iterator[list[tuple[Reader, View]]]:
    """Rungs of (reader, view) pairs, cheapest first."""
    size = gray.size
    ups = _upscale_for(size)
    yield [(_ZX_LOCAL, full_view(gray))]
    if ups:
        yield [(_ZX_LOCAL, full_view(gray, s)) for s in ups]
    yield [(_ZX_GLOBAL, full_view(gray, s)) for s in [1.0, *ups]]
    # Blurred, JPEG-softened codes: upscale then unsharp-mask. On the
    # benchmark's harsh set this rung alone recovers about a third of misses.
    sharp = [max(ups)] if ups and max(ups) > 1 else [1.0]
    yield [(r, View((0, 0, *size), s, 0, True)) for s in sharp for r in (_ZX_LOCAL, _ZX_GLOBAL)]
    if use_pyzbar:
        yield [(_pyzbar, full_view(gray, s, k)) for s in [1.0, *[u for u in ups if u > 1][:1]] for k in range(2)]
    # Overlapping crops: a small code in a big busy image, or a code whose
    # quiet zone is eaten by neighbours, decodes better on its own.
    for grid in (2, 3):
        crops = tiles(size, grid)
        crop_scale = 2.0 if max(crops[0][2] - crops[0][0], crops[0][3] - crops[0][1]) < SMALL_SIDE else 1.0
        yield [(_ZX_LOCAL, View(c, crop_scale)) for c in crops]
        if use_pyzbar and grid == 2:  # 3x3 pyzbar cost ~120 ms and found nothing extra
            yield [(_pyzbar, View(c, crop_scale)) for c in crops]
    # Quarter turns: zxing's own try_rotate covers 90/270 for 1D codes only
    # at the native grid; a turned, upscaled copy resamples differently.
    yield [(_ZX_LOCAL, full_view(gray, s, k)) for s in [1.0, *ups] for k in (1, 2, 3)]


def _upscaled(gray: Image.Image, scale: float) -> View | None:
    """The whole image at ``scale``, lowered so that the view holds at most KEPT_VIEW_PIXELS;
    None when that leaves it at or below ``scale``'s next lower rung (1x, or 2x for 3x)."""
    w, h = gray.size
    s = min(scale, (KEPT_VIEW_PIXELS / max(1, w * h)) ** 0.5)
    return full_view(gray, s) if s > (2.0 if scale > 2.0 else 1.0) + 0.05 else None


def _kept_ladder(gray: Image.Image, use_pyzbar: bool) -> Iterator[list[tuple[Reader, View]]]:
    """Rungs for a kept image, the ``KEPT_CORE_RUNGS`` always run first (see above)."""
    size = gray.size
    yield [(_ZX_LOCAL, full_view(gray))]
    yield [(_ZX_GLOBAL, full_view(gray))]
    up2, up3 = _upscaled(gray, 2.0), _upscaled(gray, 3.0)
    yield [(_ZX_LOCAL_UP, v) for v in ([up2, View(up2.crop, up2.scale, 0, True)] if up2 else [])]
    if up3 is not None:
        yield [(_ZX_LOCAL_UP, up3)]
    if use_pyzbar:
        yield [(_pyzbar, full_view(gray, 1.0, k)) for k in range(2)]
    yield [(_ZX_LOCAL, View(c, 2.0)) for c in tiles(size, 2)]


# The label ladder views the same resized crop in several rungs (no code on a 415 x 402 px
# handwritten label: the 2x view in five rungs, sharpened and turned among them; each 2x2 crop
# in two), and resizing was a quarter of the ladder's CPU. Kept up to this many pixels (4 MB
# of greyscale; a 700 px label's 2x view and its 2x2 crops fit), then made afresh as before.
LABEL_RENDER_CACHE_PIXELS = 4_000_000


def read_barcodes(
    image: Image.Image,
    *,
    use_pyzbar: bool = True,
    exhaustive: bool = False,
    budget_s: float = 1.0,
    kept: bool = False,
) -> list[BarcodeHit]:
    """Decode every barcode found in ``image``, deduplicated.

    Stops after the first rung that found a code unless ``exhaustive``, and
    gives up on further rungs once ``budget_s`` of this thread's CPU time is
    spent (the first rung always runs; on a ``kept`` image, a reduction of a
    large picture, its own ladder and its first ``KEPT_CORE_RUNGS``). CPU, not
    wall time: on a loaded machine a wall-clock budget ran fewer rungs, so
    what was searched depended on the neighbours' load. Boxes are in
    ``image``'s pixel coordinates.
    """
    gray = image.convert("L")
    found: dict[tuple[str, str], BarcodeHit] = {}
    start = time.thread_time()
    ladder, core = (_kept_ladder, KEPT_CORE_RUNGS) if kept else (_ladder, 1)
    # label ladder: resized crops kept for the later rungs that view them again (a kept image's
    # views are large and each is made once, so its ladder keeps none: see KEPT_VIEW_PIXELS)
    renders = Renders(gray, 0 if kept else LABEL_RENDER_CACHE_PIXELS)
    for i, rung in enumerate(ladder(gray, use_pyzbar)):
        # a view two readers read in turn is rendered once; each render goes before the next
        # is made (one upscaled view and zxing's working copies at a time: ~5 B a pixel)
        last: tuple[View, Image.Image] | None = None
        for reader, view in rung:
            if last is None or last[0] != view:
                last = None
                last = (view, renders.render(view))
            for hit in reader(last[1], view):
                if kept or _plausible(hit):
                    found.setdefault(_dedup_key(hit), hit)
        last = None
        if found and not exhaustive:
            break
        if i + 1 >= core and time.thread_time() - start > budget_s:
            break
    return list(found.values())


LINEAR = frozenset({"Code128", "Code39", "Code93", "Codabar", "EAN13", "EAN8", "UPCA", "UPCE", "ITF",
                    "DataBar", "DataBarExpanded", "DataBarLimited"})
# A 1D code's box spans the scan lines that decoded alike; printed bars are tall (an EAN's are
# ~0.7 of its width; the thinnest true box on the label bench was 0.08), while text read as
# bars decodes on one or two adjacent lines. zxing-cpp 3.1 read "Mucin Histochemistry",
# sharpened at 3x, as an EAN-13 on a box 201 x 1 px (bench/labels, printed_0076).
MIN_LINEAR_THICKNESS = 0.03


def _plausible(hit: BarcodeHit) -> bool:
    """False for a 1D code decoded on a sliver no printed code has (thinner than
    ``MIN_LINEAR_THICKNESS`` of its length, or 2 px): such a hit is text or texture, and
    the ladder goes on looking instead of stopping at it. Labels only: on a kept image (a
    reduction, codes of 1-2 px modules, blurred) true codes decode on slivers too (4 of the
    288 planted codes ``bench_residual_codes.py --sets printed,clean,degraded,harsh`` finds), and a code missed there is
    published, where a false one costs a look."""
    if hit.symbology not in LINEAR:
        return True
    left, top, right, bottom = hit.box
    thin, long = sorted((right - left, bottom - top))
    return thin >= max(2.0, MIN_LINEAR_THICKNESS * long)


def _dedup_key(hit: BarcodeHit) -> tuple[str, str]:
    """Same payload in the same family is one code, whichever reader saw it."""
    family = {"UPCA": "EAN13", "CompactPDF417": "PDF417"}.get(hit.symbology, hit.symbology)
    value = hit.value
    if hit.symbology == "UPCA" and len(value) == 12:
        value = "0" + value  # zbar/zxing disagree on UPC-A vs EAN-13 with a 0
    return family, value
