"""What the detectors report: findings with PHI flags, and their safe summary.

Values read from labels are PHI themselves, so every report path goes
through :meth:`Finding.to_dict`, which can leave them out.

Fields of a finding (``Finding.to_dict``), as the QC page reads them:

- ``role``: image role (label | macro | overview | thumbnail | level | image);
- ``kind``: ``barcode`` (decoded symbol) or ``text`` (a line of writing);
- ``box``: ``[left, top, right, bottom]`` in pixels of the scanned image as
  the detector saw it (the image the caller passed; right/bottom
  exclusive). Every finding has one: a barcode's corners, a text line's
  extent, or an unread writing-like region;
- ``confidence``: 0..1; 1.0 for a decoded barcode, the engine's mean
  confidence for read text, the region's writing-likeness score for an
  unread region;
- ``reader``: zxing | pyzbar | tesseract | ppocr | ppocr+tesseract (both
  engines sure) | text-regions (found, not read with confidence);
- ``symbology``: zxing-style barcode format, else null;
- ``phi``: sorted flag categories: date | accession | mrn | name |
  identifier | barcode | unreadable-text. ``unreadable-text`` marks a
  region that looks like writing (dark marks in lines on flat light
  ground) that no engine read with confidence: on a kept image a finding
  that sends the slide to review; on a removed image information for QC;
- ``flag_count``, ``flags`` (category + reason; with values also the span
  and matched text), and ``value`` only when values are included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# (left, top, right, bottom) in pixels of the image the caller passed in;
# right/bottom are exclusive, like PIL's crop boxes.
Box = tuple[int, int, int, int]

Kind = Literal["barcode", "text"]

# Category of a writing-like region no engine read with confidence: on a
# kept image a finding of its own (a label part nobody could read is still
# a label part); on a removed one, information for the QC page.
UNREADABLE = "unreadable-text"


@dataclass(frozen=True)
class PhiFlag:
    """One reason to believe a finding carries PHI.

    ``reason`` never contains the matched text, so it may be logged; the
    span (start, end) indexes ``Finding.value``.
    """

    category: str  # date | accession | mrn | name | identifier | barcode
    span: tuple[int, int]
    reason: str

    def matched(self, value: str) -> str:
        """The flagged part of ``value`` (PHI: keep inside the review folder)."""
        return value[self.span[0] : self.span[1]]


@dataclass
class Finding:
    """A barcode decoded or a line of text recognised on one image."""

    role: str  # label | macro | thumbnail | image
    kind: Kind
    value: str
    box: Box
    confidence: float  # 0..1; barcodes decode or not, so 1.0
    symbology: str | None = None  # zxing-style name (DataMatrix, QRCode, ...)
    reader: str | None = None  # zxing | pyzbar | tesseract
    flags: list[PhiFlag] = field(default_factory=list)

    @property
    def is_phi(self) -> bool:
        return bool(self.flags)

    def to_dict(self, include_values: bool) -> dict[str, Any]:
        """A JSON-ready dict; without values it holds no label content.

        ``include_values=False`` keeps categories, counts, boxes and
        confidences but not the text, the spans or the value's length, and
        no hash either (short IDs hash to something trivially reversible).
        """
        out: dict[str, Any] = {
            "role": self.role,
            "kind": self.kind,
            "symbology": self.symbology,
            "reader": self.reader,
            "box": list(self.box),
            "confidence": round(self.confidence, 3),
            "phi": sorted({f.category for f in self.flags}),
            "flag_count": len(self.flags),
        }
        if include_values:
            out["value"] = self.value
            out["flags"] = [
                {
                    "category": f.category,
                    "span": list(f.span),
                    "text": f.matched(self.value),
                    "reason": f.reason,
                }
                for f in self.flags
            ]
        else:
            out["flags"] = [{"category": f.category, "reason": f.reason} for f in self.flags]
        return out


def union_box(boxes: list[Box]) -> Box:
    """Smallest box holding all ``boxes`` (which must not be empty)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def overlap(a: Box, b: Box) -> float:
    """Intersection of two boxes over the smaller one's area (0..1)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def clip_box(box: Box, size: tuple[int, int]) -> Box:
    """``box`` clipped to an image of ``size`` (width, height)."""
    w, h = size
    return (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
