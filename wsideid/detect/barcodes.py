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

from ._geometry import View, full_view, tiles
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


def _zxing(binarizer: zxingcpp.Binarizer) -> Reader:
    def read(view_img: Image.Image, view: View) -> list[BarcodeHit]:
        hits = []
        arr = np.asarray(view_img)
        for b in zxingcpp.read_barcodes(arr, formats=_ZX_FORMATS, binarizer=binarizer):
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


def read_barcodes(
    image: Image.Image,
    *,
    use_pyzbar: bool = True,
    exhaustive: bool = False,
    budget_s: float = 1.0,
) -> list[BarcodeHit]:
    """Decode every barcode found in ``image``, deduplicated.

    Stops after the first rung that found a code unless ``exhaustive``, and
    gives up on further rungs once ``budget_s`` of this thread's CPU time is
    spent (the first rung always runs). CPU, not wall time: on a loaded
    machine a wall-clock budget ran fewer rungs, so what was searched
    depended on the neighbours' load. Boxes are in ``image``'s pixel
    coordinates.
    """
    gray = image.convert("L")
    found: dict[tuple[str, str], BarcodeHit] = {}
    start = time.thread_time()
    for rung in _ladder(gray, use_pyzbar):
        for reader, view in rung:
            for hit in reader(view.render(gray), view):
                found.setdefault(_dedup_key(hit), hit)
        if found and not exhaustive:
            break
        if time.thread_time() - start > budget_s:
            break
    return list(found.values())


def _dedup_key(hit: BarcodeHit) -> tuple[str, str]:
    """Same payload in the same family is one code, whichever reader saw it."""
    family = {"UPCA": "EAN13", "CompactPDF417": "PDF417"}.get(hit.symbology, hit.symbology)
    value = hit.value
    if hit.symbology == "UPCA" and len(value) == 12:
        value = "0" + value  # zbar/zxing disagree on UPC-A vs EAN-13 with a 0
    return family, value
