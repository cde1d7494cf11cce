"""What the detectors report: findings with PHI flags, and their safe summary.

Values read from labels are PHI themselves, so every report path goes
through :meth:`Finding.to_dict`, which can leave them out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# (left, top, right, bottom) in pixels of the image the caller passed in;
# right/bottom are exclusive, like PIL's crop boxes.
Box = tuple[int, int, int, int]

Kind = Literal["barcode", "text"]


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


def clip_box(box: Box, size: tuple[int, int]) -> Box:
    """``box`` clipped to an image of ``size`` (width, height)."""
    w, h = size
    return (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
