"""Where the physical paper label sits on a macro (slide overview) image.

Order of evidence, most trusted first:

1. vendor metadata: ``metadata_hint``, a box in macro pixels (for NDPI use
   :func:`ndpi_label_hint` to convert the raw ``roi.*.macro`` properties);
2. what the detectors found: barcodes and confident text, clustered and
   grown to the label's full extent across the slide;
3. a per-vendor default checked on the real macros in the test data.

``None`` means "unknown": the caller should treat the whole macro as
label-bearing rather than guess.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .findings import Box, Finding, clip_box, union_box

# Fraction of the macro width, from the left, that holds the label in the
# orientation openslide/tifffile return the macro. Checked on
# CMU-1-Small-Region.svs (Aperio: label at x ~150-280 of 1280) and
# test3-TRITC-2-560.ndpi (Hamamatsu: label at x ~0-308 of 1188).
VENDOR_LABEL_LEFT_FRACTION = {"aperio": 0.30, "hamamatsu": 0.30}

MIN_TEXT_CONFIDENCE = 0.6  # weaker text on a macro is mostly tissue texture
CLUSTER_GAP = 0.10  # of the macro's longer side
PAD = 0.03  # of the macro's longer side


def ndpi_label_hint(properties: Mapping[str, str], macro_size: tuple[int, int]) -> Box | None:
    """The label box in macro pixels from NDPI's ``roi.barcode.macro``.

    Units: NDPI gives ``roi.barcode.macro`` and ``roi.slide.macro`` as
    ``x1,y1,x2,y2`` in the macro camera's pixel frame; the stored macro is
    the ``roi.slide.macro`` part of that frame, mirrored left-right (in the
    sample the barcode ROI 948-1253 maps to x 3-308, where the label is).
    Keys may carry openslide's ``hamamatsu.`` prefix. Returns None when a
    key is missing or the slide ROI does not match the macro's size, since
    then the frame is not the one understood here.
    """
    barcode = _roi(properties, "roi.barcode.macro")
    slide = _roi(properties, "roi.slide.macro")
    if barcode is None or slide is None:
        return None
    sx1, sy1, sx2, sy2 = slide
    if abs((sx2 - sx1) - macro_size[0]) > 2 or abs((sy2 - sy1) - macro_size[1]) > 2:
        return None
    bx1, by1, bx2, by2 = barcode
    box = clip_box((sx2 - bx2, by1 - sy1, sx2 - bx1, by2 - sy1), macro_size)
    return box if box[2] > box[0] and box[3] > box[1] else None


def _roi(properties: Mapping[str, str], key: str) -> tuple[int, int, int, int] | None:
    raw = properties.get(key) or properties.get("hamamatsu." + key)
    if not raw:
        return None
    try:
        parts = [int(p) for p in raw.split(",")]
    except ValueError:
        return None
    return (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 else None


def locate_label(
    macro_size: tuple[int, int],
    vendor: str,
    metadata_hint: tuple[int, int, int, int] | None,
    findings: Sequence[Finding],
) -> Box | None:
    """Best guess of the label's box on a macro of ``macro_size`` (w, h).

    ``metadata_hint`` is a box already in macro pixels (x1, y1, x2, y2);
    it is ignored when it mostly falls outside the macro (wrong frame).
    """
    w, h = macro_size
    if metadata_hint is not None:
        clipped = clip_box(tuple(int(v) for v in metadata_hint[:4]), macro_size)  # type: ignore[arg-type]
        own = _area(tuple(int(v) for v in metadata_hint[:4]))  # type: ignore[arg-type]
        if own and _area(clipped) >= 0.5 * own:
            return clipped
    default = _vendor_default(macro_size, vendor)
    cluster = _finding_cluster(macro_size, findings)
    if cluster is not None:
        pad = round(PAD * max(w, h))
        box = (cluster[0] - pad, cluster[1] - pad, cluster[2] + pad, cluster[3] + pad)
        if w > h:  # landscape macro: the label spans the slide's width
            box = (box[0], 0, box[2], h)
        box = clip_box(box, macro_size)
        if default is not None and _centre_inside(cluster, default):
            box = union_box([box, default])
        return box
    return default


def _vendor_default(macro_size: tuple[int, int], vendor: str) -> Box | None:
    frac = VENDOR_LABEL_LEFT_FRACTION.get(vendor.lower().strip())
    if frac is None:
        return None
    w, h = macro_size
    return (0, 0, round(w * frac), h)


def _finding_cluster(macro_size: tuple[int, int], findings: Iterable[Finding]) -> Box | None:
    """Union of the best group of nearby label-like findings."""
    boxes = [
        (f.box, f.kind == "barcode" or f.is_phi)
        for f in findings
        if f.kind == "barcode" or f.is_phi or f.confidence >= MIN_TEXT_CONFIDENCE
    ]
    if not boxes:
        return None
    gap = CLUSTER_GAP * max(macro_size)
    groups: list[list[tuple[Box, bool]]] = []
    for item in boxes:
        near = [g for g in groups if any(_gap(item[0], other[0]) <= gap for other in g)]
        merged = [item] + [x for g in near for x in g]
        groups = [g for g in groups if not any(g is n for n in near)] + [merged]
    best = max(groups, key=lambda g: (any(strong for _, strong in g), sum(_area(b) for b, _ in g)))
    return union_box([b for b, _ in best])


def _gap(a: Box, b: Box) -> float:
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def _area(b: Box) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def _centre_inside(inner: Box, outer: Box) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]
