"""One call that says whether an image (label, macro, ...) shows PHI."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, UnidentifiedImageError

from . import barcodes
from . import ocr as _ocr_module
from .errors import UnreadableImage
from .findings import Box, Finding, PhiFlag
from .phi_text import classify_text


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
) -> ScanResult:
    """Decode barcodes, read text (if ``ocr``) and flag PHI on ``image``.

    Every decoded barcode is flagged ``barcode`` whatever its payload: a
    code on a slide almost always encodes an accession or specimen ID, and
    a payload that looks harmless can still be a key into the LIS.
    ``ocr_region`` limits OCR to part of the image (e.g. the label box on a
    macro from :func:`locate_label`); barcodes are searched everywhere.
    Raises OcrUnavailable when ``ocr`` is requested and tesseract is absent.
    """
    t0 = time.perf_counter()
    findings: list[Finding] = []
    for hit in barcodes.read_barcodes(image):
        flags = classify_text(hit.value, identifiers)
        flags.append(PhiFlag("barcode", (0, len(hit.value)), f"decoded {hit.symbology} payload"))
        findings.append(Finding(role, "barcode", hit.value, hit.box, 1.0, hit.symbology, hit.reader, flags))
    t1 = time.perf_counter()
    timings = {"barcodes": (t1 - t0) * 1000}
    if ocr:
        masks = [f.box for f in findings if f.kind == "barcode"]
        result = _ocr_module.recognise(image, ocr_region, mask=masks)
        timings.update(result.timings_ms)
        t2 = time.perf_counter()
        for line in result.lines:
            flags = classify_text(line.text, identifiers)
            findings.append(Finding(role, "text", line.text, line.box, line.confidence, None, "tesseract", flags))
        timings["classify"] = (time.perf_counter() - t2) * 1000
    timings["total"] = (time.perf_counter() - t0) * 1000
    return ScanResult(role, image.size, findings, timings, ocr_ran=ocr)


def load_image_file(path: str | Path) -> Image.Image:
    """Open a JPEG/PNG/TIFF label image fully decoded, as RGB or L.

    Raises UnreadableImage (no PHI in the message: the file name is the
    caller's to show) for missing, truncated or non-image files.
    """
    try:
        with Image.open(path) as im:
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
