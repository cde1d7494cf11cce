"""``wsideid deid FOLDER -o OUT``: a folder of slides runs as a batch.

Users point the tool at the folder their scanner wrote; writing a manifest
first should not be needed for that. Each slide file (and each subfolder
that is a DICOM series) becomes one row of a generated manifest without
``new_id``, so the runner names every output by its keyed pseudonym and
writes the mapping (source -> pseudonym) into the review folder, exactly as
for a manifest. The generated manifest names the lab's files, so it lives in
the review folder too, never in OUTDIR.

What counts as a slide is decided by content (TIFF or DICOM magic), plus
the extensions of slide formats (so a corrupt ``.svs`` fails visibly in the
summary and on the QC page instead of being skipped). Everything else is
listed as ignored. A folder that is itself one DICOM series keeps its old
meaning (one slide); a folder mixing DICOM instances with other slide files
is refused, because either reading of it would silently leave files out.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from ..errors import WsideidError
from .runner import BatchOptions, BatchResult, run_batch

FOLDER_MANIFEST = "folder-manifest.csv"  # in the review folder: the generated rows (source names: PHI)
# Slide-format extensions: such a file is a row even when its bytes are not recognised (it then fails
# with its reason, in the summary and on the QC page, rather than vanishing from the batch).
SLIDE_EXTENSIONS = frozenset({".svs", ".ndpi", ".tif", ".tiff", ".btf", ".tf2", ".tf8", ".scn", ".bif", ".qptiff",
                              ".dcm", ".mrxs", ".vsi", ".isyntax", ".czi", ".svslide", ".vms", ".vmu"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class FolderKind(enum.Enum):
    NOT_A_FOLDER = "file"
    DICOM_SERIES = "dicom-series"  # today's meaning: one slide
    SLIDES = "slides"  # a batch


@dataclass
class FolderOptions:
    """The deid options a manifest row can carry; the CLI refuses the others for a folder."""

    review_dir: str | None = None
    dates: str = "remove"
    secret_file: str | None = None
    subject: str | None = None
    identifiers: list[str] = field(default_factory=list)
    keep_macro: bool = False
    macro: str | None = None
    label: str | None = None
    detect: str = "all"
    ocr: bool = True
    verify: str = "sample"
    overwrite: bool = False
    jobs: int = 1
    progress: bool = True


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except OSError:
        return b""


def is_slide_file(path: str) -> bool:
    """By content (TIFF, DICOM, a MIRAX index file with its data folder) or by a slide format's extension."""
    from ..mrxs.slide import claims as is_mirax
    head = _head(path)
    return (head[:4] in _TIFF_MAGIC or head[128:132] == b"DICM"
            or os.path.splitext(path)[1].lower() in SLIDE_EXTENSIONS or is_mirax(path))


def folder_kind(path: str) -> FolderKind:
    if not os.path.isdir(path):
        return FolderKind.NOT_A_FOLDER
    from ..dicom import is_dicom_file, is_dicom_input
    if not is_dicom_input(path):
        return FolderKind.SLIDES
    files = [os.path.join(path, n) for n in os.listdir(path) if not n.startswith(".")]
    if any(os.path.isfile(f) and not is_dicom_file(f) and is_slide_file(f) for f in files):
        raise WsideidError("the folder holds DICOM instances and other slide files: put each DICOM series and the"
                           " other slides in folders of their own")
    return FolderKind.DICOM_SERIES


def is_slide_folder(path: str) -> bool:
    return folder_kind(path) is FolderKind.SLIDES


def list_slides(folder: str, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(slide entries, ignored entries) of ``folder``, by name, not recursive; hidden names and the
    folders in ``skip`` (this run's OUTDIR and review folder, when inside it) are left out."""
    from ..dicom import is_dicom_input
    skip = tuple(os.path.realpath(s) for s in skip)
    slides, ignored = [], []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise WsideidError(f"cannot list the input folder: {exc.strerror}") from None
    from ..mrxs.slide import claims as is_mirax, folder_of
    parts = {os.path.realpath(folder_of(os.path.join(folder, n))) for n in names
             if os.path.isfile(os.path.join(folder, n)) and is_mirax(os.path.join(folder, n))}
    for n in names:
        if n.startswith("."):
            continue
        p = os.path.join(folder, n)
        if os.path.realpath(p) in skip or os.path.realpath(p) in parts:  # a MIRAX slide's data folder: part of it
            continue
        if os.path.isfile(p) and is_slide_file(p) or os.path.isdir(p) and is_dicom_input(p):
            slides.append(n)
        else:
            ignored.append(n)
    return slides, ignored


def _check_folders(folder: str, outdir: str, review: str) -> None:
    """OUTDIR or the review folder equal to (or inside) the input folder's slide list would make the next
    run take outputs for inputs (one level: only direct entries are read)."""
    real = os.path.realpath(folder)
    for what, p in (("OUTDIR", outdir), ("the review folder", review)):
        if os.path.realpath(p) == real:
            raise WsideidError(f"{what} may not be the input folder")


def write_folder_manifest(review: str, slides: list[str], opts: FolderOptions) -> str:
    from ..cells import csv_text
    from ..safefs import write_atomic
    if any(";" in i for i in opts.identifiers):
        raise WsideidError("an --identifier may not contain ';' on a folder of slides (the manifest separator)")
    rows = [{"source": n, "subject": opts.subject or "", "identifiers": ";".join(opts.identifiers),
             "keep_macro": "yes" if opts.keep_macro else "", "macro": opts.macro or "", "label": opts.label or ""}
            for n in slides]
    path = os.path.join(review, FOLDER_MANIFEST)
    write_atomic(path, csv_text(rows, ["source", "new_id", "subject", "identifiers", "keep_macro", "macro", "label"]),
                 root=review, mode=0o600)
    return path


def run_folder(folder: str, outdir: str, opts: FolderOptions) -> tuple[BatchResult, list[str]]:
    """Run every slide of ``folder`` into ``outdir`` as a batch; returns the result and the ignored names."""
    from . import records
    folder, outdir = os.path.abspath(folder), os.path.abspath(outdir)
    review = os.path.abspath(opts.review_dir) if opts.review_dir else outdir.rstrip(os.sep) + "-review"
    if opts.dates == "shift" and not opts.subject:
        raise WsideidError("--dates shift on a folder needs --subject (every slide is then that subject's);"
                           " for several subjects write a manifest with a subject column")
    _check_folders(folder, outdir, review)
    slides, ignored = list_slides(folder, (outdir, review))
    if not slides:
        raise WsideidError("no slides in the folder (slide files by content or extension, or DICOM series folders)")
    os.makedirs(outdir, exist_ok=True)
    records.check_separate(outdir, review)
    os.makedirs(review, mode=0o700, exist_ok=True)  # holds PHI: owner only
    manifest = write_folder_manifest(review, slides, opts)
    bopts = BatchOptions(jobs=opts.jobs, review_dir=review, source_root=folder, dates=opts.dates,
                         secret_file=opts.secret_file, detect=opts.detect, ocr=opts.ocr, verify=opts.verify,
                         progress=opts.progress, overwrite=opts.overwrite)
    return run_batch(manifest, outdir, bopts), ignored
