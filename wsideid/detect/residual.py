"""Residual scan of a KEPT image: thumbnail, overview, macro with its label blanked.

Different from a label scan (:func:`.scan.scan_image`) because the image
is mostly tissue and is published: the scan must be fast (it runs on every
slide), must not read tissue texture as names, and must not miss a label
part nobody can read. So it works in stages:

1. barcodes, by the kept-image ladder (``barcodes.read_barcodes(kept=True)``:
   whole-image views at 1x and 2x (plain and sharpened) always, more only on
   a short CPU budget;
   a code on a reduced image is small, so upscaling finds it, not crops or
   turns);
2. :func:`.textregions.find_text_regions`: lines of dark marks on flat,
   light ground (the layout of a paper label, not of tissue), cheaply;
3. only those lines are read, each both ways up (0/180 deg, or 90/270 for
   a turned label), by tesseract (all lines in one call, as a montage) and
   by PP-OCR (:mod:`.ppocr`, one short-lived worker), and each reading an
   engine is sure of goes through the PHI classifier (either engine's
   flags count: recall first);
4. a line that looks like writing (region score >= ``UNREADABLE_MIN_SCORE``)
   but that neither engine read with confidence becomes a finding of its
   own, category ``unreadable-text``: a label part nobody could read is
   still a label part, and on a published image it needs a person.

Findings carry their box in the image's pixels, so the QC page can draw
them; see :class:`.findings.Finding` for the fields.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from PIL import Image

from .errors import DetectorError
from .findings import UNREADABLE, Finding, PhiFlag, clip_box, overlap
from .lines import Reading, best_reading, is_sure, read_regions
from .phi_text import classify_text
from .scan import MAX_LINES, UNREADABLE_MIN_SCORE, ScanResult, barcode_findings
from .textregions import TextRegion, find_text_regions

# CPU seconds of barcode rungs on a kept image past the always-run ones (barcodes.
# KEPT_CORE_RUNGS: plain, other binariser, 2x plain and sharpened; ~70-120 ms on a 768-960 px
# thumbnail or level): a further rung runs only while the scan has spent less than this,
# so a small image (a 768x262 macro: ~35 ms) also gets the 3x view. Was 0.12 s over the label ladder
# (both binarisers, sharpened, pyzbar both ways: 130-175 ms on every clean thumbnail),
# which found fewer planted codes (bench/README.md, "Session 6, residual detectors").
BARCODE_BUDGET_S = 0.04
MAX_LONG_SIDE = 1280  # px: larger kept images are scanned reduced to this


@dataclass
class KeptWork:
    """A kept image as the detectors read it: reduced to ``MAX_LONG_SIDE`` by ``factor``, and
    the size it was read at (boxes and the result are given in those pixels). Made before the
    scan so the caller can let the read go: a 4 MP level read whole is 15 MB of RGB the scan
    never looks at again (issue 14: it ran beside the copy and the stream check)."""

    image: Image.Image
    factor: int
    size: tuple[int, int]


def reduce_kept(image: Image.Image) -> KeptWork:
    """``image`` reduced by a whole factor to ``MAX_LONG_SIDE``; an image its reader decoded
    at that size already (``tiff.pixels.READ_AT``: the size it stands for) is taken as it is."""
    from ..tiff.pixels import READ_AT
    at = image.info.get(READ_AT)
    if at is not None:
        factor = -(-max(at) // MAX_LONG_SIDE)
        if image.size != (-(-at[0] // factor), -(-at[1] // factor)):
            raise DetectorError(f"a {image.size[0]}x{image.size[1]} read does not stand for {at[0]}x{at[1]}")
        return KeptWork(image, factor, tuple(at))  # type: ignore[arg-type]
    factor = -(-max(image.size) // MAX_LONG_SIDE)
    return KeptWork(image.reduce(factor) if factor > 1 else image, factor, image.size)


def scan_kept_image(image: Image.Image, role: str, identifiers: Sequence[str] = (), ocr: bool = True,
                    use_ppocr: bool = True) -> ScanResult:
    """Barcodes, text-like regions, and their readings on one kept image.

    An image larger than ``MAX_LONG_SIDE`` (a reduced pyramid level) is
    scanned reduced to it: a label or a code that shows only above that
    size is a full-resolution feature, and the scan's cost and memory stay
    those of a thumbnail. Boxes are mapped back to ``image``'s pixels.
    """
    return scan_kept_work(reduce_kept(image), role, identifiers, ocr, use_ppocr)


def scan_kept_work(kept: KeptWork, role: str, identifiers: Sequence[str] = (), ocr: bool = True,
                   use_ppocr: bool = True) -> ScanResult:
    """``scan_kept_image`` of an image already reduced (``reduce_kept``)."""
    t0 = time.perf_counter()
    work, factor = kept.image, kept.factor
    findings = barcode_findings(work, role, identifiers, BARCODE_BUDGET_S, kept=True)
    t1 = time.perf_counter()
    timings = {"barcodes": (t1 - t0) * 1000}
    if ocr:
        codes = [f.box for f in findings]
        regions = [r for r in find_text_regions(work) if not any(overlap(r.box, b) > 0.5 for b in codes)][:MAX_LINES]
        t2 = time.perf_counter()
        timings["text_regions"] = (t2 - t1) * 1000
        if regions:
            readings, t = read_regions(work, regions, use_ppocr=use_ppocr)
            timings.update(t)
            for region, per in zip(regions, readings):
                findings.append(_finding(role, region, per, identifiers))
    if factor > 1:
        for f in findings:
            f.box = clip_box(tuple(v * factor for v in f.box), kept.size)  # type: ignore[assignment]
    timings["total"] = (time.perf_counter() - t0) * 1000
    return ScanResult(role, kept.size, findings, timings, ocr_ran=ocr)


def _finding(role: str, region: TextRegion, readings: Sequence[Reading], identifiers: Sequence[str]) -> Finding:
    """One finding per line: flagged by any sure reading, or unreadable."""
    sure = [r for r in readings if is_sure(r)]
    if sure:
        best = best_reading(sure)
        flags: list[PhiFlag] = []
        seen: set[str] = set()
        for r in sure:  # either engine's flags count; spans must index best.text
            for f in classify_text(r.text, identifiers):
                if f.category in seen:
                    continue
                seen.add(f.category)
                span = f.span if r is best else (0, len(best.text))
                flags.append(PhiFlag(f.category, span, f"{f.reason} ({r.engine})"))
        reader = "+".join(sorted({r.engine for r in sure}))
        return Finding(role, "text", best.text, region.box, best.confidence, None, reader, flags)
    best = best_reading(readings)
    # An unsure reading still counts when it matches this slide's own
    # identifier (matched fuzzily, and specific): "cMu-I" is CMU-1.
    flags = [f for f in classify_text(best.text, identifiers) if f.category == "identifier"] if best.text else []
    if region.score >= UNREADABLE_MIN_SCORE:
        flags.append(PhiFlag(UNREADABLE, (0, 0), f"writing-like marks (score {region.score:.2f}) that no engine read"))
    return Finding(role, "text", best.text, region.box, region.score, None, "text-regions", flags)
