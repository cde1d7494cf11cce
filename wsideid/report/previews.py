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

The page knows no format: the driver named by the result reads the images
(``Driver.removed_preview``, ``Driver.kept_previews``).
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


def save_review_images(new_id: str, source: str, review_dir: str, result: Any) -> list[dict[str, Any]]:
    """Previews of the removed images (from ``source``) and of the kept ones (from the published
    output); an image that cannot be decoded is skipped, never a failure of the slide."""
    from ..registry import by_name
    if result is None or result.plan is None:
        return []
    driver = by_name(result.format)
    plan = result.plan
    folder = os.path.join(review_dir, "images")
    saved: list[dict[str, Any]] = []

    def save(read, kind: str, role: str, index: int, stage: str) -> None:
        try:
            img = read(index)
            if img is None:  # the driver shows no such image (a MIRAX record)
                return
            name = _save_image(img, os.path.join(folder, f"{new_id}.{kind}-{role}-{index}.jpg"), review_dir,
                               KEPT_PREVIEW_MAX if kind == "kept" else PREVIEW_MAX)
        except Exception:  # noqa: BLE001 - a preview that cannot be decoded is not a failure
            return
        saved.append({"file": name, "role": role, "kind": kind, "index": index, "stage": stage})

    for d in result.plan.images:
        if d.action == "remove" and d.image.role in REMOVED_ROLES:
            save(lambda index: driver.removed_preview(source, plan, index), "removed", d.image.role, d.image.index,
                 "source")
    if not result.output or not os.path.exists(result.output):
        return saved
    for ref in driver.kept_previews(result.output, plan, kept_targets(result.scans)):
        save(lambda index, read=ref.read: read(), "kept", ref.role, ref.index, "output")
    return saved
