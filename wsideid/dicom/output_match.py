"""Which published DICOM instance a residual scan was read from, for the QC page's previews.

Why a match and not a name: a scan names the *source* instance (its index in
the plan), while the output instance is named by its new SOP Instance UID. The
match is by role and size; a scan with no unambiguous match gets no preview
rather than a wrong one.
"""

from __future__ import annotations

import os
from typing import Sequence


def _scaled_sizes(w: int, h: int) -> set[tuple[int, int]]:
    """The sizes a reader may give an image of w x h when it reduces it by a power of two."""
    return {(-(-w // f), -(-h // f)) for f in (1, 2, 4, 8, 16, 32, 64, 128)}


def kept_files(output: str, scans: Sequence) -> dict[int, str]:
    """Scan index -> the published instance (a file of ``output``, or ``output`` itself) it was read from."""
    import pydicom

    from .source import quiet_pydicom, role_of
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
