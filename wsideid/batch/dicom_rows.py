"""Manifest rows naming a DICOM input: which slide of it each row is.

A DICOM folder may hold several slides (``wsideid.dicom.slides`` splits it
by content). Each slide is its own row, named by its pyramid's Series
Instance UID in the ``series_uid`` column, with its own new_id and subject.
A row that leaves the choice open on a folder of several slides is refused
with the slides it could mean, never resolved by a guess; so is a series
the folder does not hold, and a second row for a slide already named.
A folder that cannot be read is left to its job, which fails with the
reason (the batch goes on).
"""

from __future__ import annotations

import os

from ..errors import WsideidError
from .manifest import ManifestRow, RowProblem


def _slides(path: str):
    """The slides of a DICOM input (read once while unchanged: ``dicom.slides.cached_slide_set``),
    None when it cannot be read (its job fails with the reason)."""
    from ..dicom.slides import cached_slide_set
    try:
        return cached_slide_set(path)
    except WsideidError:
        return None


def check_dicom_rows(rows: list[ManifestRow], problems: list[RowProblem]) -> list[ManifestRow]:
    """The rows whose slide is settled; the others become problems naming the slides found."""
    from ..sniff import is_dicom_input
    owner: dict[tuple[str, str], int] = {}
    kept = []
    for r in rows:
        if not is_dicom_input(r.source):
            if r.series:
                problems.append(RowProblem(r.row, "series_uid", "names a slide of a DICOM input only", r.source_rel))
                continue
            kept.append(r)
            continue
        found = _slides(r.source)
        if found is None:
            kept.append(r)
            continue
        if r.series:
            slide = found.by_series(r.series)
            if slide is None:
                problems.append(RowProblem(r.row, "series_uid", f"no slide with this series in the input; it holds:"
                                                                f" {found.listing()}", r.source_rel))
                continue
        elif len(found.slides) > 1:
            problems.append(RowProblem(r.row, "series_uid", f"the folder holds {len(found.slides)} slides: give each"
                                                            f" its own row with its series_uid: {found.listing()}",
                                       r.source_rel))
            continue
        else:
            slide = found.slides[0] if found.slides else None
        key = (os.path.realpath(r.source), slide.series_uid if slide else "")
        if key in owner:
            problems.append(RowProblem(r.row, "series_uid", f"same slide as row {owner[key]}", r.source_rel))
            continue
        owner[key] = r.row
        kept.append(r)
    return kept


def slide_content(row: ManifestRow) -> list[str]:
    """The files a row's pseudonym is taken from: its slide's, as the single-slide ``deid`` takes them."""
    from ..registry import content_files
    from ..sniff import is_dicom_input
    if os.path.isdir(row.source) and is_dicom_input(row.source):
        from ..dicom.slides import slide_files
        try:
            return slide_files(row.source, row.series)
        except WsideidError:  # its job fails with the reason; a name is still needed for the summary
            pass
    return content_files(row.source)
