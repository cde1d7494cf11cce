"""Per-slide budgets: how much metadata the tool will parse, and how big an audit may grow.

Why budgets and not per-structure counts: limits such as "4096 IFDs" and
"4096 entries per IFD" multiply (16.7 million entries) while each stays
within its own bound, so a 48 MB file could cost 8 GB and publish a
481 MB audit. A budget is one running total per slide, charged by every
reader as it goes, and exceeded means a one-line MalformedFile (exit 2)
before the work that the total would have cost.

The numbers, and why:

- ``MAX_METADATA_BYTES`` (64 MB): every IFD table and tag value the TIFF
  reader copies, across all images. Real slides need well under 10 MB
  (an Aperio description is a few kB; the tile offset and byte-count tables
  of a 200k x 150k px slide are about 5 MB in BigTIFF).
- ``MAX_ENTRIES`` (100,000): metadata entries across the slide: IFD entries
  plus the keys a vendor text (Aperio description, NDPI properties) splits
  into. Real slides have hundreds. Each entry costs about 2 kB through
  plan, verification and audit, so this keeps a hostile file near 200 MB.
- ``MAX_SEGMENTS`` (1,000,000): tiles and strips across all images. A
  200k x 150k px slide in 256 px tiles has about 610,000 with its pyramid.
  Each costs a few hundred bytes in layout checks and copying.
- ``MAX_AUDIT_FIELDS`` / ``MAX_AUDIT_IMAGES``: beyond these the audit lists
  the first ones and summarises the rest as counts per (rule, action), so
  its size is bounded whatever the slide holds.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import MalformedFile

MAX_METADATA_BYTES = 64 << 20
MAX_ENTRIES = 100_000
MAX_SEGMENTS = 1_000_000
MAX_AUDIT_FIELDS = 2_000
MAX_AUDIT_IMAGES = 500


@dataclass
class Budget:
    """Running totals for one slide; ``charge_*`` raise MalformedFile when a total passes its bound."""

    metadata_bytes: int = 0
    entries: int = 0
    segments: int = 0

    def charge_bytes(self, n: int, what: str = "metadata") -> None:
        self.metadata_bytes += n
        if self.metadata_bytes > MAX_METADATA_BYTES:
            raise MalformedFile(f"{what}: the slide's metadata exceeds the {MAX_METADATA_BYTES >> 20} MB budget "
                                "(hostile or corrupt file)")

    def charge_entries(self, n: int, what: str = "metadata") -> None:
        self.entries += n
        if self.entries > MAX_ENTRIES:
            raise MalformedFile(f"{what}: the slide holds more than {MAX_ENTRIES} metadata entries "
                                "(hostile or corrupt file)")

    def charge_segments(self, n: int, what: str = "image data") -> None:
        self.segments += n
        if self.segments > MAX_SEGMENTS:
            raise MalformedFile(f"{what}: the slide holds more than {MAX_SEGMENTS} tiles or strips "
                                "(hostile or corrupt file)")


def check_keys(n: int, what: str) -> None:
    """A text about to be split into ``n`` keys: refused before the split allocates them."""
    if n > MAX_ENTRIES:
        raise MalformedFile(f"{what}: {n} keys in one metadata text (hostile or corrupt file)")


def bounded_list(records: Iterable[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The first ``limit`` records, and a summary of the rest (counts per rule and action), or None.

    Why: the audit of a slide with a million fields must not be a 500 MB
    file; the counts keep what a reviewer needs (what was done how often).
    """
    kept: list[dict[str, Any]] = []
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for r in records:
        if len(kept) < limit:
            kept.append(r)
        else:
            counts[(str(r.get("rule", "")), str(r.get("action", "")))] += 1
    if not counts:
        return kept, None
    return kept, {"omitted": sum(counts.values()),
                  "by_rule": [{"rule": r, "action": a, "count": c} for (r, a), c in sorted(counts.items())]}


# Pixels decoded per image the PHI detectors scan (16 MP of RGB is 48 MB): a larger
# image is read in parts and reduced by a power of two until it fits, so memory stays
# flat whatever the slide's size (``wsideid.slide_scan``, ``wsideid.dicom.scanimage``).
MAX_SCAN_PIXELS = 16_000_000
