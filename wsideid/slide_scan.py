"""Run the PHI detectors on a slide's non-pyramid images.

Two uses in the pipeline: (1) on the label, macro and unknown images of the
*source*, before they are dropped, so the QC page can show what was there
and the batch can match slides to manifest identifiers; (2) on every image
that stays in the *output* except the full-resolution level (thumbnail, a
kept macro, a replacement label, every smaller level), as the residual-PHI
check: a finding there keeps the slide out of the clean output folder and
sends it to review.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import WsideidError

LEVEL_TEXT_MIN_CONFIDENCE = 0.6  # printed label text reads at 0.8-0.95; tissue texture below 0.4


@dataclass
class ImageScan:
    role: str
    index: int
    stage: str  # "source" (before removal) or "output" (residual)
    result: Any  # detect.scan.ScanResult or None
    error: str | None = None
    covered_by: int | None = None  # not read: a smaller scanned level covers it (``level_cover``)

    @property
    def has_phi(self) -> bool:
        return self.result is not None and self.result.has_phi

    def to_dict(self, include_values: bool) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "index": self.index, "stage": self.stage}
        if self.error:
            d["error"] = self.error
        if self.covered_by is not None:
            from .level_cover import covered_note
            d["skipped"] = covered_note(self.covered_by)
            d["covered_by"] = self.covered_by
        if self.result is not None:
            d.update(self.result.to_dict(include_values))
        return d


def read_tiff_image(path: str, index: int):
    """Image ``index`` of a TIFF-family slide through its driver (so an image a vendor holds
    inside its metadata, Philips' XML, reads too); a TIFF no vendor claims, from its IFDs."""
    from .errors import UnsupportedFormat
    from .registry import open_input
    from .tiff import pixels
    try:
        opened = open_input(path)
    except UnsupportedFormat:
        return pixels.read_tiff_image(path, index)
    return opened.driver.read_image(path, index)


def _every_slide(path: str) -> str | None:
    """A DICOM folder is scanned whole, every slide's labels included (``dicom.slides.ALL_SLIDES``)."""
    from .sniff import is_dicom_input
    if not is_dicom_input(path):
        return None
    from .dicom.slides import ALL_SLIDES
    return ALL_SLIDES


def scan_images(path: str, targets: Sequence[tuple[str, int]], stage: str, identifiers: Sequence[str] = (),
                ocr: bool = True, reader=read_tiff_image, decoded=None) -> list[ImageScan]:
    """Scan each (role, index) image of ``path``; detector failures are recorded, not raised.
    ``decoded``: codes already decoded on the (one) source image (``detect.barcodes.Decoded``)."""
    from .detect.scan import scan_image
    if stage == "output":  # a source scan (`wsideid scan LABEL.jpg`) needs neither: ~6 ms of imports
        from .detect.residual import MAX_LONG_SIDE, reduce_kept, scan_kept_work
        from .tiff.pixels import OUTPUT_SCAN_PIXELS, detector_side, scan_limit
    out: list[ImageScan] = []
    for role, index in targets:
        try:
            if stage == "output":  # kept images: read no larger than the residual stage uses
                with scan_limit(OUTPUT_SCAN_PIXELS), detector_side(MAX_LONG_SIDE):
                    img = reader(path, index)
            else:
                img = reader(path, index)
            if stage == "output":  # kept images: text-region stage first (detect/residual.py)
                kept = reduce_kept(img)
                img = None  # the read at full scan size goes before the detectors run (issue 14)
                result = scan_kept_work(kept, role, identifiers, ocr=ocr)
            else:
                result = scan_image(img, role, identifiers, ocr=ocr, decoded=decoded)
            if role == "level":
                # OCR on tissue reads texture as short "words" (a 0.26-confidence
                # "LAST, FIRST" on CMU-1's 277x370 level); only flagged text read
                # with some confidence on a pyramid level is worth a reviewer's time
                result.findings = [f for f in result.findings if f.kind == "barcode" or
                                   (f.flags and f.confidence >= LEVEL_TEXT_MIN_CONFIDENCE)]
            out.append(ImageScan(role, index, stage, result))
        except WsideidError as exc:
            out.append(ImageScan(role, index, stage, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a corrupt image must not crash the run
            out.append(ImageScan(role, index, stage, None, f"image could not be decoded ({type(exc).__name__})"))
    return out


def source_targets(plan) -> list[tuple[str, int]]:
    """Removed images a person should see: label, macro, overview, and every
    image whose role could not be established."""
    return [(d.image.role, d.image.index) for d in plan.images
            if d.image.role in ("label", "macro", "overview", "unknown")]


def scan_refs(images: Sequence, stage: str, identifiers: Sequence[str], ocr: bool) -> list[ImageScan]:
    """``scan_images`` over the ``drivers.base.ImageRef`` a driver lists (each reads itself); a
    level covered by a smaller scanned one (``level_cover``) is recorded as skipped, not read."""
    out: list[ImageScan] = []
    for ref in images:
        if ref.covered_by is not None:
            out.append(ImageScan(ref.role, ref.index, stage, None, covered_by=ref.covered_by))
            continue
        out += scan_images("", [(ref.role, ref.index)], stage, identifiers, ocr, reader=lambda _p, _i, r=ref: r.read(),
                           decoded=ref.decoded)
    return out


def is_plain_image(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG"))


def _plain_image_reader(path: str, index: int):
    from .detect.scan import load_image_file
    return load_image_file(path)


def scan_paths(paths: Sequence[str], identifiers: Sequence[str], ocr: bool = True
               ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """``wsideid scan``: slides (their non-level images) and plain label images.

    Values are included: this is the lab's own console, the same place the
    slide itself is readable.
    """
    from .errors import UnsupportedFormat
    from .sniff import is_dicom_input
    results, errors = [], []
    for path in paths:
        try:
            if not is_dicom_input(path) and not os.path.isfile(path):
                raise WsideidError("not a file")
            if not is_dicom_input(path) and is_plain_image(path):
                scans = scan_images(path, [("image", 0)], "source", identifiers, ocr, reader=_plain_image_reader)
            else:
                from .registry import open_input  # slides only: a label image needs no driver
                try:
                    opened = open_input(path, _every_slide(path))
                    scans = scan_refs(opened.driver.label_images(opened), "source", identifiers, ocr)
                except UnsupportedFormat:
                    if is_dicom_input(path):  # a DICOM file refused by its driver is no label image: say why
                        raise
                    scans = scan_images(path, [("image", 0)], "source", identifiers, ocr, reader=_plain_image_reader)
            if len(scans) == 1 and scans[0].error and scans[0].result is None and scans[0].role == "image":
                raise WsideidError(scans[0].error)
            results.append({"path": path, "has_phi": any(s.has_phi for s in scans),
                            "images": [s.to_dict(include_values=True) for s in scans]})
        except WsideidError as exc:
            errors.append({"path": path, "error": str(exc)})
    return results, errors
