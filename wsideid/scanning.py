"""Run the PHI detectors on a slide's non-pyramid images.

Two uses in the pipeline: (1) on the label and macro of the *source*, before
they are dropped, so the QC page can show what was there and the batch can
match slides to manifest identifiers; (2) on every non-pyramid image that
stays in the *output* (thumbnail, a kept macro, a replacement label), as the
residual-PHI check: a finding there keeps the slide out of the clean output
folder and sends it to review.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import WsideidError

MAX_SCAN_PIXELS = 40_000_000  # a "thumbnail" larger than this is not decoded for scanning


@dataclass
class ImageScan:
    role: str
    index: int
    stage: str  # "source" (before removal) or "output" (residual)
    result: Any  # detect.scan.ScanResult or None
    error: str | None = None

    @property
    def has_phi(self) -> bool:
        return self.result is not None and self.result.has_phi

    def to_dict(self, include_values: bool) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "index": self.index, "stage": self.stage}
        if self.error:
            d["error"] = self.error
        if self.result is not None:
            d.update(self.result.to_dict(include_values))
        return d


def read_tiff_image(path: str, index: int):
    """One IFD decoded to a PIL image (labels, macros, thumbnails are small)."""
    import tifffile
    from PIL import Image
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[index]
        if int(np.prod(page.shape[:2])) > MAX_SCAN_PIXELS:
            raise WsideidError(f"image {index} is too large to scan ({page.shape[1]}x{page.shape[0]})")
        arr = page.asarray()
    if arr.ndim == 3 and arr.shape[2] > 3:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
    return Image.fromarray(arr)


def scan_images(path: str, targets: Sequence[tuple[str, int]], stage: str, identifiers: Sequence[str] = (),
                ocr: bool = True, reader=read_tiff_image) -> list[ImageScan]:
    """Scan each (role, index) image of ``path``; detector failures are recorded, not raised."""
    from .detect.scan import scan_image
    out: list[ImageScan] = []
    for role, index in targets:
        try:
            img = reader(path, index)
            result = scan_image(img, role, identifiers, ocr=ocr)
            if role == "level":
                # OCR on tissue reads texture as short "words"; only flagged
                # text on a pyramid level is worth a reviewer's time
                result.findings = [f for f in result.findings if f.kind == "barcode" or f.flags]
            out.append(ImageScan(role, index, stage, result))
        except WsideidError as exc:
            out.append(ImageScan(role, index, stage, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a corrupt image must not crash the run
            out.append(ImageScan(role, index, stage, None, f"image could not be decoded ({type(exc).__name__})"))
    return out


LOW_RES_LEVEL_PIXELS = 4_000_000


def residual_targets(plan, kept_index_map: dict[int, int]) -> list[tuple[str, int]]:
    """Images that stay in the output and a person could read, as (role, output index).

    Every kept non-level image, and, when no thumbnail is kept (NDPI has
    none), the smallest pyramid level if it is small enough to look at
    whole: handwriting or a sticker on the glass inside the scanned area
    shows there.
    """
    kept = [d for d in plan.images if d.action != "remove" and d.image.index in kept_index_map]
    out = [(d.image.role, kept_index_map[d.image.index]) for d in kept if d.image.role != "level"]
    if not any(d.image.role == "thumbnail" for d in kept):
        levels = [d.image for d in kept if d.image.role == "level"]
        if levels:
            small = min(levels, key=lambda im: im.width * im.height)
            if small.width * small.height <= LOW_RES_LEVEL_PIXELS:
                out.append(("level", kept_index_map[small.index]))
    return out


def source_targets(plan) -> list[tuple[str, int]]:
    return [(d.image.role, d.image.index) for d in plan.images if d.image.role in ("label", "macro", "overview")]


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
    from .detect_format import open_slide
    from .errors import UnsupportedFormat
    results, errors = [], []
    from .dicom import is_dicom_input
    for path in paths:
        try:
            if is_dicom_input(path):
                scans = _scan_dicom(path, identifiers, ocr)
            elif not os.path.isfile(path):
                raise WsideidError("not a file")
            elif is_plain_image(path):
                scans = scan_images(path, [("image", 0)], "source", identifiers, ocr, reader=_plain_image_reader)
            else:
                try:
                    slide = open_slide(path)
                    inv = slide.module.inventory(slide.container)
                    targets = [(im.role, im.index) for im in inv.images if im.role != "level"]
                    scans = scan_images(path, targets, "source", identifiers, ocr)
                except UnsupportedFormat:
                    scans = scan_images(path, [("image", 0)], "source", identifiers, ocr, reader=_plain_image_reader)
            if len(scans) == 1 and scans[0].error and scans[0].result is None and scans[0].role == "image":
                raise WsideidError(scans[0].error)
            results.append({"path": path, "has_phi": any(s.has_phi for s in scans),
                            "images": [s.to_dict(include_values=True) for s in scans]})
        except WsideidError as exc:
            errors.append({"path": path, "error": str(exc)})
    return results, errors


def _scan_dicom(path: str, identifiers: Sequence[str], ocr: bool) -> list[ImageScan]:
    """A DICOM file or series: its label, overview and thumbnail instances (and a
    lone small level, such as a LABEL-less slide's only low-resolution image)."""
    from .dicom.pipeline import instance_image
    from .dicom.source import load, quiet_pydicom
    with quiet_pydicom():
        src = load(path)
        paths = {i.index: i.path for i in src.instances}
        targets = [(i.role, i.index) for i in src.instances if i.role != "level"]
        if not targets:
            targets = [(i.role, i.index) for i in src.instances][:1]
        out: list[ImageScan] = []
        for role, index in targets:
            out += scan_images(paths[index], [(role, index)], "source", identifiers, ocr, reader=instance_image)
    return out
