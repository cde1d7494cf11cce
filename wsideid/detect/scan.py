"""One call that says whether an image (label, macro, ...) shows PHI."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, UnidentifiedImageError

from . import barcodes, ppocr
from . import ocr as _ocr_module
from .agreement import explained
from .errors import UnreadableImage
from .findings import UNREADABLE, Box, Finding, PhiFlag, overlap
from .lines import TESSERACT_MIN_CONFIDENCE, Reading, best_reading, is_sure, read_regions
from .phi_text import classify_text
from .textregions import TextRegion, find_text_regions

MAX_LINES = 12  # the best-scoring lines only; a label has fewer
# Region score above which unread marks are a finding: lines of writing
# score 0.84-0.98, the marker "CMU-1" on CMU-1's label 0.78; debris rows,
# smears and slide edges on a real fluorescence macro 0.63-0.73.
UNREADABLE_MIN_SCORE = 0.75


@dataclass
class ScanResult:
    """Findings on one image, and how long each detector took."""

    role: str
    size: tuple[int, int]
    findings: list[Finding]
    timings_ms: dict[str, float] = field(default_factory=dict)
    ocr_ran: bool = False

    @property
    def has_phi(self) -> bool:
        return any(f.is_phi for f in self.findings)

    @property
    def has_text(self) -> bool:
        """Any barcode or legible text at all, PHI-flagged or not."""
        return bool(self.findings)

    def to_dict(self, include_values: bool) -> dict[str, Any]:
        """Summary for reports; see Finding.to_dict for what is left out."""
        cats: dict[str, int] = {}
        for f in self.findings:
            for flag in f.flags:
                cats[flag.category] = cats.get(flag.category, 0) + 1
        return {
            "role": self.role,
            "size": list(self.size),
            "has_phi": self.has_phi,
            "ocr_ran": self.ocr_ran,
            "phi_categories": cats,
            "barcodes": sum(f.kind == "barcode" for f in self.findings),
            "text_lines": sum(f.kind == "text" for f in self.findings),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "findings": [f.to_dict(include_values) for f in self.findings],
        }


def scan_image(
    image: Image.Image,
    role: str,
    identifiers: Sequence[str] = (),
    ocr: bool = True,
    ocr_region: Box | None = None,
    second_engine: bool = True,
    decoded: barcodes.Decoded | None = None,
) -> ScanResult:
    """Decode barcodes, read text (if ``ocr``) and flag PHI on ``image``.

    Every decoded barcode is flagged ``barcode`` whatever its payload: a
    code on a slide almost always encodes an accession or specimen ID, and
    a payload that looks harmless can still be a key into the LIS.
    ``ocr_region`` limits OCR to part of the image (e.g. the label box on a
    macro from :func:`locate_label`); barcodes are searched everywhere.
    With ``second_engine``, the text lines :mod:`.textregions` finds are
    also read by PP-OCR (:mod:`.ppocr`); its sure readings add findings
    where they flag PHI tesseract's lines did not, and a writing-like line
    neither engine read becomes an ``unreadable-text`` finding. The same
    lines tell which way up the text runs, so tesseract probes two quarter
    turns instead of four.
    ``decoded``: codes already decoded on this image (taken when its size matches, not decoded again).
    Raises OcrUnavailable when ``ocr`` is requested and tesseract is absent.
    """
    t0 = time.perf_counter()
    findings = barcode_findings(image, role, identifiers, decoded=decoded)
    t1 = time.perf_counter()
    timings = {"barcodes": (t1 - t0) * 1000}
    if ocr:
        masks = [f.box for f in findings if f.kind == "barcode"]
        regions = _regions(image, ocr_region, masks)
        t2 = time.perf_counter()
        timings["text_regions"] = (t2 - t1) * 1000
        result = _ocr_module.recognise(image, ocr_region, mask=masks, turns=likely_turns(regions))
        timings.update(result.timings_ms)
        t3 = time.perf_counter()
        for line in result.lines:
            flags = classify_text(line.text, identifiers)
            findings.append(Finding(role, "text", line.text, line.box, line.confidence, None, "tesseract", flags))
        timings["classify"] = (time.perf_counter() - t3) * 1000
        if second_engine and regions:
            findings = _second_engine(image, role, regions, findings, identifiers, timings, result.sure_turn)
    timings["total"] = (time.perf_counter() - t0) * 1000
    return ScanResult(role, image.size, findings, timings, ocr_ran=ocr)


def barcode_findings(image: Image.Image, role: str, identifiers: Sequence[str], budget_s: float = 1.0,
                     decoded: barcodes.Decoded | None = None, kept: bool = False) -> list[Finding]:
    """Every decoded barcode, flagged ``barcode`` whatever its payload (``decoded``: the codes
    decoded on these pixels already, when its size is the image's; ``kept``: a kept image's
    ladder, see ``barcodes.read_barcodes``)."""
    out = []
    hits = decoded.hits if decoded is not None and decoded.size == image.size else \
        barcodes.read_barcodes(image, budget_s=budget_s, kept=kept)
    for hit in hits:
        flags = classify_text(hit.value, identifiers)
        flags.append(PhiFlag("barcode", (0, len(hit.value)), f"decoded {hit.symbology} payload"))
        out.append(Finding(role, "barcode", hit.value, hit.box, 1.0, hit.symbology, hit.reader, flags))
    return out


def _regions(image: Image.Image, region: Box | None, masks: Sequence[Box]) -> list[TextRegion]:
    """Text lines in ``region`` (or the whole image), in image coordinates."""
    if region is None:
        found = find_text_regions(image)
    else:
        dx, dy = region[0], region[1]
        found = [TextRegion((b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy), r.vertical, r.score, r.marks)
                 for r in find_text_regions(image.crop(region)) for b in [r.box]]
    return [r for r in found if not any(overlap(r.box, m) > 0.5 for m in masks)][:MAX_LINES]


def likely_turns(regions: Sequence[TextRegion]) -> tuple[int, ...]:
    """Quarter turns worth probing: two when the lines agree on a direction.

    Weighted by score, lines running across (0/180) or down (90/270) the
    image; with no lines or no clear majority all four are tried.
    """
    across = sum(r.score * r.marks for r in regions if not r.vertical)
    down = sum(r.score * r.marks for r in regions if r.vertical)
    if across > 2 * down and across > 0:
        return (0, 2)
    if down > 2 * across:
        return (1, 3)
    return (0, 1, 2, 3)


def _second_engine(image: Image.Image, role: str, regions: Sequence[TextRegion], found: Sequence[Finding],
                   identifiers: Sequence[str], timings: dict[str, float], upright: int | None = None
                   ) -> list[Finding]:
    """PP-OCR on the lines: tesseract's findings checked against it, and what it adds.

    Where tesseract's probes found the upright turn beyond doubt, lines
    running that way are read in that turn only (half the recogniser's
    work); on a weak reading (handwriting) every line is read both ways.
    """
    if not ppocr.available():
        return list(found)
    regions = whole_lines(regions, found)
    readings, t = read_regions(image, regions, use_tesseract=False, upright=upright)
    timings.update(t)
    return second_engine_findings(role, regions, readings, found, identifiers)


def whole_lines(regions: Sequence[TextRegion], found: Sequence[Finding]) -> list[TextRegion]:
    """Each region stretched along its line to the end of a confident tesseract
    line it lies on, so that PP-OCR reads (and the name test judges) a word
    with its whole line.

    Why: the line finder loses letters that print or blur merged into blobs
    too big to be one character; its box then stops mid-word ("Mucin
    Histochemis", "Frozen Secti"), and the cut word is in no list. Tesseract's
    own line box holds the whole line. Taken only when the two run the same
    way, share at least 60% of their height across the line, and the
    tesseract line is at most twice as thick (not two lines in one box).
    """
    lines = [f.box for f in found if f.kind == "text" and f.reader == "tesseract"
             and f.confidence >= TESSERACT_MIN_CONFIDENCE]
    out = []
    for r in regions:
        a = 1 if r.vertical else 0  # the axis the line runs along
        lo, hi = r.box[a], r.box[a + 2]
        c0, c1 = r.box[1 - a], r.box[3 - a]
        for box in lines:
            b0, b1 = box[1 - a], box[3 - a]
            if (box[3] - box[1] > box[2] - box[0]) != r.vertical or b1 - b0 > 2 * (c1 - c0):
                continue
            if min(c1, b1) - max(c0, b0) < 0.6 * min(c1 - c0, b1 - b0):
                continue
            if min(hi, box[a + 2]) <= max(lo, box[a]):  # not on the same stretch of the line
                continue
            lo, hi = min(lo, box[a]), max(hi, box[a + 2])
        # A few pixels more hide no letter, and change what the recogniser reads
        # ("23-JUN" read "23-JN" once its crop grew by 1 px): an end moves by
        # half the line's thickness or not at all.
        least = max(2, (c1 - c0) // 2)
        lo = lo if r.box[a] - lo >= least else r.box[a]
        hi = hi if hi - r.box[a + 2] >= least else r.box[a + 2]
        if (lo, hi) == (r.box[a], r.box[a + 2]):
            out.append(r)
            continue
        new = (lo, c0, hi, c1) if a == 0 else (c0, lo, c1, hi)
        out.append(TextRegion(new, r.vertical, r.score, r.marks))
    return out


def second_engine_findings(role: str, regions: Sequence[TextRegion], readings: Sequence[Sequence[Reading]],
                           found: Sequence[Finding], identifiers: Sequence[str]) -> list[Finding]:
    """``found`` (tesseract's findings) checked against PP-OCR's ``readings``
    (one list per region), then the findings the readings add.

    A name flag of either engine that the other engine's reading of the same
    line shows to be a misreading is dropped (:mod:`.agreement`: words in no
    list only, never a known name). Apart from the reading so that the label
    bench can re-classify recorded readings exactly as a scan does
    (bench/labels/bench_detectors.py --replay).
    """
    sure_of = [[r for r in per if is_sure(r)] for per in readings]
    kept = [_cross_checked(f, regions, sure_of, identifiers) for f in found]
    text = [f for f in kept if f.kind == "text"]
    out = []
    for region, sure in zip(regions, sure_of):
        near = [f for f in text if overlap(f.box, region.box) > 0.3]
        if sure:
            r = best_reading(sure)
            have = {fl.category for f in near for fl in f.flags}
            others = [f.value for f in near if f.confidence >= TESSERACT_MIN_CONFIDENCE]
            flags = [fl for fl in classify_text(r.text, identifiers)
                     if fl.category not in have and not explained(r.text, fl, others, identifiers)]
            if flags:
                out.append(Finding(role, "text", r.text, region.box, r.confidence, None, "ppocr", flags))
        elif region.score >= UNREADABLE_MIN_SCORE and not any(f.confidence >= 0.6 for f in near):
            flags = [PhiFlag(UNREADABLE, (0, 0), f"writing-like marks (score {region.score:.2f}) no engine read")]
            out.append(Finding(role, "text", "", region.box, region.score, None, "text-regions", flags))
    return kept + out


def _cross_checked(f: Finding, regions: Sequence[TextRegion], sure_of: Sequence[Sequence[Reading]],
                   identifiers: Sequence[str]) -> Finding:
    """A tesseract text finding without the name flags PP-OCR's sure readings
    of the same line show to be misreadings (:func:`.agreement.explained`)."""
    if f.kind != "text" or not any(fl.category == "name" for fl in f.flags):
        return f
    others = [r.text for region, sure in zip(regions, sure_of) if overlap(f.box, region.box) > 0.3 for r in sure]
    flags = [fl for fl in f.flags if not explained(f.value, fl, others, identifiers)]
    return f if len(flags) == len(f.flags) else replace(f, flags=flags)


def load_image_file(path: str | Path) -> Image.Image:
    """Open a JPEG/PNG/TIFF label image fully decoded, as RGB or L.

    Raises UnreadableImage (no PHI in the message: the file name is the
    caller's to show) for missing, truncated or non-image files.
    """
    from ..budget import MAX_SCAN_PIXELS
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_SCAN_PIXELS and im.format == "JPEG":
                # the codec decodes at 1/2, 1/4 or 1/8: the least reduction that brings it under the cap
                f = (MAX_SCAN_PIXELS / (im.width * im.height)) ** 0.5 / 2
                im.draft(im.mode if im.mode in ("RGB", "L") else "RGB", (int(im.width * f) + 1, int(im.height * f) + 1))
            if im.width * im.height > MAX_SCAN_PIXELS:  # a 236 kB PNG of 9000 x 9000 px decoded to 670 MB of RSS
                raise UnreadableImage(f"label image of {im.width}x{im.height} px is larger than the "
                                      f"{MAX_SCAN_PIXELS // 1_000_000} MP a label image may have")
            im.load()
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            else:
                im = im.copy()
    except FileNotFoundError as exc:
        raise UnreadableImage("label image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"label image cannot be decoded ({type(exc).__name__})") from exc
    return im
