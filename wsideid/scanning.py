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

import numpy as np

from .errors import WsideidError

# Pixels decoded per scanned image. An image up to this size is decoded whole
# (16 MP of RGB is 48 MB); a larger one (a mid-resolution level, a big macro
# pyramid) is read tile by tile, or through OpenSlide in 2048-pixel squares,
# and reduced by a power of two until it fits, so memory stays flat whatever
# the slide's size. Text that only shows at full resolution of such a level is
# also in the smaller levels, which are scanned too.
MAX_SCAN_PIXELS = 16_000_000
_CHUNK = 2048
LEVEL_TEXT_MIN_CONFIDENCE = 0.6  # printed label text reads at 0.8-0.95; tissue texture below 0.4


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


def _factor(w: int, h: int) -> int:
    f = 1
    while (w // f) * (h // f) > MAX_SCAN_PIXELS:
        f *= 2
    return f


def _to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] > 3:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
    return arr


def _reduced_tiles(page, w: int, h: int, f: int) -> np.ndarray:
    """A tiled page read one tile at a time, every ``f``-th pixel kept."""
    spp = page.samplesperpixel
    out = np.zeros((-(-h // f), -(-w // f)) + ((spp,) if spp > 1 else ()), dtype=page.dtype)
    for seg, idx, _shape in page.segments(maxworkers=1, buffersize=8 << 20):
        if seg is None:
            continue
        y, x = idx[-3], idx[-2]
        tile = seg[0][: h - y, : w - x]
        # keep the pixels on the global grid (y, x multiples of f)
        oy, ox = (-y) % f, (-x) % f
        part = tile[oy::f, ox::f]
        ty, tx = (y + oy) // f, (x + ox) // f
        out[ty:ty + part.shape[0], tx:tx + part.shape[1]] = part.reshape(part.shape[:2] + out.shape[2:])
    return out


def _reduced_openslide(path: str, w: int, h: int, f: int) -> np.ndarray | None:
    """A level OpenSlide shows (NDPI levels are one huge strip), read in squares."""
    import openslide
    try:
        slide = openslide.OpenSlide(path)
    except Exception:  # noqa: BLE001 - not an OpenSlide level: the caller says so
        return None
    try:
        if (w, h) not in slide.level_dimensions:
            return None
        level = slide.level_dimensions.index((w, h))
        ds = slide.level_downsamples[level]
        out = np.zeros((-(-h // f), -(-w // f), 3), np.uint8)
        for y in range(0, h, _CHUNK):
            for x in range(0, w, _CHUNK):
                cw, ch = min(_CHUNK, w - x), min(_CHUNK, h - y)
                part = np.asarray(slide.read_region((int(x * ds), int(y * ds)), level, (cw, ch)))[::f, ::f, :3]
                out[y // f:y // f + part.shape[0], x // f:x // f + part.shape[1]] = part
        return out
    finally:
        slide.close()


def read_tiff_image(path: str, index: int):
    """Image ``index`` (of ``TiffFile.image_ifds()``: top-level IFDs, then SubIFD
    images) as a PIL image of at most MAX_SCAN_PIXELS, read in bounded memory."""
    import tifffile
    from PIL import Image

    from .tiff.container import read_tiff
    tf = read_tiff(path)
    images = tf.image_ifds()
    if index >= len(images):  # an image held inside the vendor's metadata (Philips XML)
        from .vendors import detect_tiff_vendor
        embedded = getattr(detect_tiff_vendor(tf), "embedded_image", None)
        if embedded is not None:
            return embedded(tf, index).convert("RGB")
    if not 0 <= index < len(images):
        raise WsideidError(f"image {index} is not in the file")
    ifd = images[index]
    with tifffile.TiffFile(path) as t:
        if index < len(tf.ifds):
            page = t.pages[index]
        else:  # a SubIFD image: tifffile reads a page wherever its IFD lies
            t.filehandle.seek(ifd.offset)
            page = tifffile.TiffPage(t, index=0)
        h, w = page.shape[:2] if page.planarconfig != 2 or page.samplesperpixel == 1 else page.shape[1:3]
        f = _factor(w, h)
        if f == 1:
            arr = page.asarray()
        elif page.is_tiled and (page.planarconfig == 1 or page.samplesperpixel == 1):
            arr = _reduced_tiles(page, w, h, f)
        else:
            arr = None
    if arr is None:
        arr = _reduced_openslide(path, w, h, f)
        if arr is None:
            raise WsideidError(f"image {index} ({w}x{h}) is too large to decode whole and cannot be read in parts")
    return Image.fromarray(_to_uint8_rgb(arr))


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


LOW_RES_LEVEL_PIXELS = 4_000_000  # DICOM: a lone level this small is scanned whole (dicom/pipeline.py)


def residual_targets(plan, kept_index_map: dict[int, int]) -> list[tuple[str, int]]:
    """Images that stay in the output, as (role, output index): every kept image
    except the full-resolution level (its size, so NDPI focal planes of it too).

    Thumbnails, kept macros, replacement labels and every smaller level: a
    sticker or handwriting inside the scanned area shows there, and an image
    taken for a level may be a label; each is read reduced to
    MAX_SCAN_PIXELS, so the cost is bounded per image.
    """
    kept = [d for d in plan.images if d.action != "remove" and d.image.index in kept_index_map]
    levels = [d.image for d in kept if d.image.role == "level"]
    full = max(((im.width, im.height) for im in levels), key=lambda s: s[0] * s[1], default=None)
    return [(d.image.role, kept_index_map[d.image.index]) for d in kept
            if not (d.image.role == "level" and (d.image.width, d.image.height) == full)]


def source_targets(plan) -> list[tuple[str, int]]:
    """Removed images a person should see: label, macro, overview, and every
    image whose role could not be established."""
    return [(d.image.role, d.image.index) for d in plan.images
            if d.image.role in ("label", "macro", "overview", "unknown")]


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
