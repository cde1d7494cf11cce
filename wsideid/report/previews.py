"""Review copies of a slide's small images, for the QC page.

Two kinds, both JPEG previews in the review folder's ``images/``:

- **removed**: label, macro, overview and unknown images, read from the
  *source* before they were dropped (what the reviewer must know was there);
- **kept**: the images that leave the lab, read from the *published output*
  after de-identification (thumbnail, a kept or blanked macro, a generated
  label, and the smallest pyramid level as the overview of the slide), for
  every slide, not only flagged ones: a reviewer approves what leaves, so the
  page shows it.

Each entry names the image ``index`` and scan ``stage`` so the page can draw
the detector boxes of that scan onto it (boxes are in the scanned image's
pixels; the page scales them by the scan's recorded size, not the preview's).
"""

from __future__ import annotations

import io
import os
from typing import Any

REMOVED_ROLES = ("label", "macro", "overview", "unknown")  # removed images the QC page shows
PREVIEW_MAX = 1024  # px, longest side of the review copies of removed images (label text must stay legible)
KEPT_PREVIEW_MAX = 640  # px, of the kept ones: made for every slide, and the page embeds them all


def _save_image(img, path: str, root: str, longest: int = PREVIEW_MAX) -> str:
    """A JPEG preview, written like every review file: new temp, rename, no link followed."""
    from ..safefs import makedirs, write_atomic
    img = img.convert("RGB")
    img.thumbnail((longest, longest))
    makedirs(root, os.path.dirname(path))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    write_atomic(path, buf.getvalue(), root=root, mode=0o600)
    return os.path.basename(path)


def kept_targets(scans: list) -> list:
    """The output scans to preview: every kept image but the pyramid levels, any level the
    detectors flagged (or could not read), and the smallest level (the slide as it leaves)."""
    out = [sc for sc in scans if sc.stage == "output"]
    levels = [sc for sc in out if sc.role == "level" and sc.result is not None]
    smallest = min(levels, key=lambda sc: sc.result.size[0] * sc.result.size[1], default=None)
    return [sc for sc in out if sc.role != "level" or sc.has_phi or sc.error or sc is smallest]


def _scaled_sizes(w: int, h: int) -> set[tuple[int, int]]:
    """The sizes a reader may give an image of w x h when it reduces it by a power of two."""
    return {(-(-w // f), -(-h // f)) for f in (1, 2, 4, 8, 16, 32, 64, 128)}


def dicom_kept_files(output: str, scans: list) -> dict[int, str]:
    """Scan index -> the published DICOM instance it was read from (a scan names the source
    instance; the output file is named by its new SOP Instance UID), matched by role and size;
    a scan with no unambiguous match gets no preview rather than a wrong one."""
    import pydicom

    from ..dicom.source import quiet_pydicom, role_of
    files = [output] if os.path.isfile(output) else sorted(
        os.path.join(output, n) for n in os.listdir(output) if os.path.isfile(os.path.join(output, n)))
    found: list[tuple[str, str, tuple[int, int]]] = []
    with quiet_pydicom():
        for path in files:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not an instance we can show
                continue
            cols, rows = int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0)
            if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                cols = int(ds.get("TotalPixelMatrixColumns", cols) or cols)
                rows = int(ds.get("TotalPixelMatrixRows", rows) or rows)
            found.append((role_of(ds), path, (cols, rows)))
    out: dict[int, str] = {}
    for sc in scans:
        if sc.result is None:
            continue
        size = tuple(sc.result.size[:2])
        free = [(path, (w, h)) for role, path, (w, h) in found if role == sc.role and path not in out.values()]
        exact = [path for path, wh in free if wh == size]  # a 512x384 level, not the 1024x768 one halved
        match = exact or [path for path, (w, h) in free if size in _scaled_sizes(w, h)]
        if len(match) == 1:
            out[sc.index] = match[0]
    return out


def save_review_images(new_id: str, source: str, review_dir: str, result: Any) -> list[dict[str, Any]]:
    """Previews of the removed images (from ``source``) and of the kept ones (from the published
    output); an image that cannot be decoded is skipped, never a failure of the slide."""
    from ..slide_scan import read_tiff_image
    if result is None or result.plan is None:
        return []
    read_removed = lambda index: read_tiff_image(source, index)  # noqa: E731
    if result.format == "dicom":
        from ..dicom.scanimage import instance_image
        paths = {i.index: i.path for i in result.plan.inventory.container.source.instances}
        read_removed = lambda index: instance_image(paths[index], index)  # noqa: E731
    folder = os.path.join(review_dir, "images")
    saved: list[dict[str, Any]] = []

    def save(read, kind: str, role: str, index: int, stage: str) -> None:
        try:
            name = _save_image(read(index), os.path.join(folder, f"{new_id}.{kind}-{role}-{index}.jpg"), review_dir,
                               KEPT_PREVIEW_MAX if kind == "kept" else PREVIEW_MAX)
        except Exception:  # noqa: BLE001 - a preview that cannot be decoded is not a failure
            return
        saved.append({"file": name, "role": role, "kind": kind, "index": index, "stage": stage})

    for d in result.plan.images:
        if d.action == "remove" and d.image.role in REMOVED_ROLES:
            save(read_removed, "removed", d.image.role, d.image.index, "source")
    if not result.output or not os.path.exists(result.output):
        return saved
    targets = kept_targets(result.scans)
    if result.format == "dicom":
        from ..dicom.scanimage import instance_image
        files = dicom_kept_files(result.output, targets)
        for sc in targets:
            if sc.index in files:
                save(lambda index: instance_image(files[index], index), "kept", sc.role, sc.index, "output")
    elif os.path.isfile(result.output):
        for sc in targets:
            save(lambda index: read_tiff_image(result.output, index), "kept", sc.role, sc.index, "output")
    return saved
