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
listed as ignored. A folder that is itself one DICOM slide keeps its old
meaning (one slide); a DICOM folder holding several slides (split by content,
``wsideid.dicom.slides``) runs as a batch with one row per slide (its
``series_uid``), and so does a DICOM subfolder holding several; instances
that belong to no slide are listed as ignored, never written. A folder mixing
DICOM instances with other slide files is refused, because either reading of
it would silently leave files out.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from ..errors import WsideidError
from .job import SourceOrigin
from .runner import BatchOptions, BatchResult, run_batch
from .manifest import RowProblem

FOLDER_MANIFEST = "folder-manifest.csv"  # in the review folder: the generated rows (source names: PHI)
# Slide-format extensions: such a file is a row even when its bytes are not recognised (it then fails
# with its reason, in the summary and on the QC page, rather than vanishing from the batch).
SLIDE_EXTENSIONS = frozenset({".svs", ".ndpi", ".tif", ".tiff", ".btf", ".tf2", ".tf8", ".scn", ".bif", ".qptiff",
                              ".dcm", ".mrxs", ".vsi", ".isyntax", ".czi", ".svslide", ".vms", ".vmu"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class FolderKind(enum.Enum):
    NOT_A_FOLDER = "file"
    DICOM_SERIES = "dicom-series"  # one slide
    DICOM_SLIDES = "dicom-slides"  # a DICOM folder holding several slides: a batch, one row per slide
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
    origin: SourceOrigin | None = None  # the folder is a temporary copy of these (a DICOMweb study)


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
    return FolderKind.DICOM_SLIDES if len(_dicom_slides(path).slides) > 1 else FolderKind.DICOM_SERIES


def _dicom_slides(path: str):
    """The slides of a DICOM folder (``dicom.slides.SlideSet``), read once while it is unchanged
    (the one bounded cache, ``dicom.slides.cached_slide_set``)."""
    from ..dicom.slides import cached_slide_set
    return cached_slide_set(path)


def is_slide_folder(path: str, series: str | None = None) -> bool:
    """A folder that runs as a batch: slides, or a DICOM folder of several slides when none was picked."""
    kind = folder_kind(path)
    return kind is FolderKind.SLIDES or kind is FolderKind.DICOM_SLIDES and not series


def one_id_refusal(path: str) -> str:
    """Why ``--new-id`` cannot name a DICOM folder of several slides (with the slides found)."""
    found = _dicom_slides(path)
    return (f"one --new-id cannot name several slides: the folder holds {len(found.slides)} ({found.listing()});"
            " drop --new-id (each slide gets a pseudonym, the mapping goes to the review folder), pick one"
            " with --series (a series UID or its series-... token), or write a manifest with a series_uid column and use `wsideid run`")


def _rows_of(folder: str, name: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The rows of one entry: a DICOM folder of several slides gives one per slide, plus the instances
    that belong to none (listed as ignored); anything else is one row (its job reports what is wrong)."""
    from ..dicom import is_dicom_input
    path = os.path.join(folder, name)
    if not (os.path.isdir(path) and is_dicom_input(path)):
        return [(name, None)], []
    try:
        found = _dicom_slides(path)
    except WsideidError:
        return [(name, None)], []
    ignored = [f"{name}: {o}" for o in found.orphans]
    if len(found.slides) <= 1:
        return [(name, None)], ignored
    return [(name, s.series_uid) for s in found.slides], ignored


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


def _subjects(root: str, slides: list[tuple[str, str | None]], opts: FolderOptions) -> dict:
    """``--dates shift`` needs each row's subject: ``--subject`` for all, else, when every slide is
    DICOM, each slide's own PatientID (issue 15: with no manifest the PatientID is the subject), so a
    folder of several patients' slides shifts each patient by their own offset. A slide with no
    PatientID, or several, gets none: its row is refused, the others go on."""
    if opts.dates != "shift" or opts.subject:
        return {}
    from ..dicom import is_dicom_input
    if not all(is_dicom_input(os.path.join(root, n)) for n, _ in slides):
        raise WsideidError("--dates shift on a folder needs --subject (every slide is then that subject's);"
                           " for several subjects write a manifest with a subject column")
    out = {}
    for name, series in slides:
        try:
            found = _dicom_slides(os.path.join(root, name))
        except WsideidError:  # its job fails with the reason
            continue
        slide = found.by_series(series) if series else (found.slides[0] if found.slides else None)
        ids = {str(i.ds.get("PatientID", "") or "").strip() for i in slide.instances} - {""} if slide else set()
        if len(ids) == 1:  # else no subject: the row is refused ("dates=shift needs a subject")
            out[(name, series)] = ids.pop()
    return out


def write_folder_manifest(review: str, slides: list[tuple[str, str | None]], opts: FolderOptions,
                          subjects: dict | None = None) -> str:
    from ..cells import csv_text
    from ..safefs import write_atomic
    if any(";" in i for i in opts.identifiers):
        raise WsideidError("an --identifier may not contain ';' on a folder of slides (the manifest separator)")
    rows = [{"source": n, "series_uid": series or "", "subject": opts.subject or (subjects or {}).get((n, series), ""),
             "identifiers": ";".join(opts.identifiers), "keep_macro": "yes" if opts.keep_macro else "",
             "macro": opts.macro or "", "label": opts.label or ""}
            for n, series in slides]
    path = os.path.join(review, FOLDER_MANIFEST)
    write_atomic(path, csv_text(rows, ["source", "series_uid", "new_id", "subject", "identifiers", "keep_macro",
                                       "macro", "label"]), root=review, mode=0o600)
    return path


def run_folder(folder: str, outdir: str, opts: FolderOptions) -> tuple[BatchResult, list[str]]:
    """Run every slide of ``folder`` into ``outdir`` as a batch; returns the result and the ignored names."""
    from . import records
    folder, outdir = os.path.abspath(folder), os.path.abspath(outdir)
    review = os.path.abspath(opts.review_dir) if opts.review_dir else outdir.rstrip(os.sep) + "-review"
    _check_folders(folder, outdir, review)
    root = folder
    if folder_kind(folder) is FolderKind.DICOM_SLIDES:  # the folder is one entry of its parent, one row per slide
        root, entries = os.path.dirname(folder), [os.path.basename(folder)]
        ignored: list[str] = []
    else:
        entries, ignored = list_slides(folder, (outdir, review))
    entries, misnamed = [n for n in entries if _utf8(n)], [n for n in entries if not _utf8(n)]
    ignored = [n if _utf8(n) else shown_name(n) for n in ignored]
    slides: list[tuple[str, str | None]] = []
    for name in entries:
        rows, orphans = _rows_of(root, name)
        slides += rows
        ignored += orphans
    if not slides and misnamed:
        raise WsideidError(f"{MISNAMED}: {', '.join(map(shown_name, misnamed))}")
    if not slides:
        raise WsideidError("no slides in the folder (slide files by content or extension, or DICOM series folders)")
    subjects = _subjects(root, slides, opts)
    records.check_separate(outdir, review)
    from ..safefs import make_folders
    make_folders((outdir, 0o777, "output folder"), (review, 0o700, "review folder"))  # review: PHI, owner only
    manifest = write_folder_manifest(review, slides, opts, subjects)
    bopts = BatchOptions(jobs=opts.jobs, review_dir=review, source_root=root, dates=opts.dates,
                         secret_file=opts.secret_file, detect=opts.detect, ocr=opts.ocr, verify=opts.verify,
                         progress=opts.progress, overwrite=opts.overwrite, origin=opts.origin)
    res = run_batch(manifest, outdir, bopts)
    res.problems += [RowProblem(0, "source", MISNAMED, shown_name(n)) for n in misnamed]  # the exit code says so
    return res, ignored


MISNAMED = "the file name is not UTF-8 text (e.g. Latin-1 from an old share): rename it to process it"


def _utf8(name: str) -> bool:
    """A name the file system gave as bytes that are not UTF-8 (Python keeps them as surrogates): the
    manifest, the mapping, the records and the QC page could not hold it, so the slide is refused by name."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_name(name: str) -> str:
    """The name with its non-UTF-8 bytes shown as ``\\xe9``: printable, and findable with ``ls -b``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")
