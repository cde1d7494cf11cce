"""Split the instances of a DICOM folder into slides, by content (never by file names).

Why: a scanner's export or a PACS download often puts several slides (and
several studies) in one folder, and each slide must leave as its own series
under its own research ID. Grouping by file name would be a guess; the
standard says what belongs together (PS3.3 A.32.8, the VL Whole Slide
Microscopy IOD, and C.8.12.4):

- A slide's **pyramid** is the VOLUME instances sharing a Series Instance
  UID. They must also agree on the Study Instance UID, the Frame of
  Reference UID (the slide's coordinate system), the Container Identifier
  (the glass slide) and the imaged volume (its physical width and height,
  within ``SIZE_TOLERANCE``). A series that does not is not one slide: it
  is listed with its problem and refused, never written.
- Its **other images** (THUMBNAIL, LABEL, OVERVIEW, and any instance of
  another kind, which the profile removes) are the instances of the same
  series; or, when they sit in a series of their own (the standard allows
  it), the one slide of the same study that shares their Frame of
  Reference UID or Container Identifier and contradicts neither.
- An instance that matches no slide, or several, is an **orphan**: never
  written, reported by its position in the folder and its role.

A slide is named by the Series Instance UID of its pyramid (the manifest's
``series_uid`` column, ``--series``), or by its token ``series-<12 hex>``
(:func:`series_token`). Messages name slides by token and files only: error
lines reach batch records and logs that may be shared, and a source UID
links them back to the patient's study.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field, replace

from ..errors import MalformedFile, UnsupportedFormat, WsideidError
from .source import DicomSource, Instance, Orphan

SIZE_TOLERANCE = 0.05  # relative: reduced levels round their pixel counts, so their imaged volume varies a little


class _EverySlide(str):
    """The type of ``ALL_SLIDES``: compared by identity, so no text a user types (``--series '*'``,
    a manifest cell) can select every instance of a folder, orphans included, as one slide."""


ALL_SLIDES = _EverySlide("*")  # "every instance, ungrouped": ``wsideid scan`` reads every label
TOKEN = re.compile(r"series-[0-9a-f]{12}")


def series_token(uid: str) -> str:
    """A series named without its UID: ``series-`` + 12 hex of its SHA-256 (``--series`` takes it).
    Only someone who holds the UID can tell which series it is."""
    return "series-" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:12] if uid else "series-(none)"


def names_series(selector: str, uid: str) -> bool:
    """Whether ``--series`` (a UID or a token) names the series ``uid``."""
    return bool(uid) and selector in (uid, series_token(uid))


@dataclass
class Slide:
    """One slide: its pyramid's series and every instance that belongs to it."""

    series_uid: str
    study_uid: str
    instances: list[Instance] = field(default_factory=list)
    problem: str | None = None  # why the series is not one slide (then it is refused)

    def describe(self) -> str:
        roles: dict[str, int] = {}
        for i in self.instances:
            roles[i.role] = roles.get(i.role, 0) + 1
        what = ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
        files = ""
        if self.instances:
            first = os.path.basename(self.instances[0].path)
            files = f"{first}" + (f" and {len(self.instances) - 1} more file(s)" if len(self.instances) > 1 else "")
        return f"{series_token(self.series_uid)} ({files}; {what})" + (
            f" [refused: {self.problem}]" if self.problem else "")


@dataclass
class SlideSet:
    slides: list[Slide]
    orphans: list[Orphan]

    def listing(self) -> str:
        return "; ".join(s.describe() for s in self.slides) or "no slide"

    def by_series(self, series_uid: str) -> Slide | None:
        return next((s for s in self.slides if names_series(series_uid, s.series_uid)), None)


def _text(inst: Instance, keyword: str) -> str:
    try:
        return str(inst.ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - a malformed value identifies nothing
        return ""


def _size(inst: Instance) -> tuple[float, float] | None:
    try:
        w, h = float(inst.ds.get("ImagedVolumeWidth")), float(inst.ds.get("ImagedVolumeHeight"))
    except (TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h) else None


def _close(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= SIZE_TOLERANCE * max(x, y) for x, y in zip(a, b))


def _disagreement(levels: list[Instance]) -> str | None:
    """Why the VOLUME instances of one series are not one slide, or None."""
    for keyword, what in (("StudyInstanceUID", "Study Instance UIDs"), ("FrameOfReferenceUID", "Frames of Reference"),
                          ("ContainerIdentifier", "Container Identifiers")):
        if len({_text(i, keyword) for i in levels}) > 1:
            return f"its VOLUME instances have different {what}"
    sizes = [s for s in map(_size, levels) if s is not None]
    if any(not _close(sizes[0], s) for s in sizes[1:]):
        return "its VOLUME instances image different areas (mixed sizes: ImagedVolumeWidth/Height differ)"
    return None


def _contradicts(inst: Instance, slide: Slide) -> bool:
    """Frame of Reference or Container Identifier present on both sides and different."""
    head = slide.instances[0]
    return any(_text(inst, k) and _text(head, k) and _text(inst, k) != _text(head, k)
               for k in ("FrameOfReferenceUID", "ContainerIdentifier"))


def _shares(inst: Instance, slide: Slide) -> bool:
    head = slide.instances[0]
    return any(_text(inst, k) and _text(inst, k) == _text(head, k)
               for k in ("FrameOfReferenceUID", "ContainerIdentifier"))


def group(instances: list[Instance]) -> SlideSet:
    """The slides and the orphans of a folder's instances (see the module docstring)."""
    series: dict[str, list[Instance]] = {}
    for inst in instances:
        if inst.role == "level":
            series.setdefault(_text(inst, "SeriesInstanceUID"), []).append(inst)
    slides = []
    for uid in sorted(series):
        levels = series[uid]
        slides.append(Slide(uid, _text(levels[0], "StudyInstanceUID"), list(levels),
                            "its VOLUME instances have no Series Instance UID" if not uid else _disagreement(levels)))
    orphans = []
    for inst in instances:
        if inst.role == "level":
            continue
        own = [s for s in slides if s.series_uid and s.series_uid == _text(inst, "SeriesInstanceUID")
               and s.study_uid == _text(inst, "StudyInstanceUID")]
        if own:
            if _contradicts(inst, own[0]):
                orphans.append(Orphan(inst.index, inst.role, "its Frame of Reference or Container Identifier differs"
                                                             " from its series' slide"))
            else:
                own[0].instances.append(inst)
            continue
        study = [s for s in slides if s.study_uid == _text(inst, "StudyInstanceUID")]
        match = [s for s in study if _shares(inst, s) and not _contradicts(inst, s)]
        if len(match) == 1:
            match[0].instances.append(inst)
        elif match:
            orphans.append(Orphan(inst.index, inst.role, f"it matches {len(match)} slides of its study"
                                                         " (same Frame of Reference or Container Identifier)"))
        else:
            orphans.append(Orphan(inst.index, inst.role, "no VOLUME series of its study shares its series, Frame of"
                                                         " Reference or Container Identifier"))
    for s in slides:
        s.instances.sort(key=lambda i: i.index)
    return SlideSet(slides, orphans)


def select(src: DicomSource, series: str | None) -> DicomSource:
    """The instances of one slide of ``src`` (the only one, or the one whose pyramid is ``series``).

    A single file is one instance: it is taken as it is (``series``, if given, must be its own).
    Refuses, listing the slides found, when the choice is ambiguous or names no slide.
    """
    if series is ALL_SLIDES:
        return src
    if not src.is_folder:
        own = _text(src.instances[0], "SeriesInstanceUID")
        if series and not names_series(series, own):
            raise WsideidError(f"--series names another series: the file belongs to {series_token(own)}")
        return src
    found = group(src.instances)
    slide = pick(found, series)
    others = len(found.slides) - 1
    return replace(src, instances=list(slide.instances), orphans=list(found.orphans), other_slides=others)


def pick(found: SlideSet, series: str | None) -> Slide:
    """The slide of a folder ``series`` names (or its only one); refuses, listing the slides
    found, when the choice is ambiguous, names no slide or names a series that is not one."""
    if not found.slides:
        raise UnsupportedFormat("the folder holds no slide (no VOLUME instance)"
                                + (f"; {len(found.orphans)} instance(s) belong to none" if found.orphans else ""))
    if series:
        slide = found.by_series(series)
        if slide is None:
            raise WsideidError(f"no slide with the --series given in the folder; it holds: {found.listing()}")
    elif len(found.slides) > 1:
        raise WsideidError(f"the folder holds {len(found.slides)} slides: {found.listing()}; name one with --series"
                           " (or a manifest's series_uid column), or run `wsideid deid FOLDER -o OUTDIR` without"
                           " --new-id to give each its own pseudonym")
    else:
        slide = found.slides[0]
    if slide.problem:
        raise UnsupportedFormat(f"{series_token(slide.series_uid)} is not one slide: {slide.problem}")
    return slide


# What the grouping reads of each header (the rest is read, and checked, when a slide is opened).
_GROUPING = ["SOPClassUID", "ImageType", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
             "ContainerIdentifier", "ImagedVolumeWidth", "ImagedVolumeHeight",
             "PatientID"]  # not for grouping: a folder batch's --dates shift takes it as the slide's subject


def _grouping_header(path: str, index: int) -> Instance:
    """Only the attributes the grouping uses: a listing of the slides of a large folder holds no
    per-frame sequences in memory (the header's size is charged to the budget first, as on open)."""
    import pydicom

    from .source import prescan, role_of
    prescan(path, index)
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=_GROUPING)
    except (OSError, EOFError) as exc:
        raise MalformedFile(f"instance {index}: cannot read ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on hostile input
        raise MalformedFile(f"instance {index}: not a readable DICOM file ({type(exc).__name__})") from None
    return Instance(index, path, ds, None, role_of(ds), False)


def slide_set(path: str) -> SlideSet:
    """The slides of a DICOM file or folder, from the grouping attributes of each header."""
    from .source import folder_files, quiet_pydicom
    with quiet_pydicom():
        if not os.path.isdir(path):
            inst = _grouping_header(path, 0)
            return SlideSet([Slide(_text(inst, "SeriesInstanceUID"), _text(inst, "StudyInstanceUID"), [inst])], [])
        files, _ = folder_files(path)
        return group([_grouping_header(f, i) for i, f in enumerate(files)])


MAX_SLIDE_SETS = 8  # folders remembered: a long-lived pool or Dask worker must not grow with the folders it saw
_SLIDE_SETS: dict[tuple, SlideSet | WsideidError] = {}


def _state(path: str) -> tuple:
    if not os.path.isdir(path):
        st = os.stat(path)
        return ((st.st_size, st.st_mtime_ns),)
    with os.scandir(path) as it:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it if e.is_file()))


def cached_slide_set(path: str) -> SlideSet:
    """``slide_set(path)``, read once while the folder is unchanged (again when a file was added,
    removed or rewritten since), for every caller: the batch's folder listing, each manifest
    row, each pseudonym. At most MAX_SLIDE_SETS folders are kept; a folder that cannot be read
    is remembered too (its error raised again), so a manifest does not read it once per row."""
    key = (os.path.realpath(path), _state(path))
    if key not in _SLIDE_SETS:
        if len(_SLIDE_SETS) >= MAX_SLIDE_SETS:
            _SLIDE_SETS.pop(next(iter(_SLIDE_SETS)))
        try:
            _SLIDE_SETS[key] = slide_set(path)
        except WsideidError as exc:
            _SLIDE_SETS[key] = exc
    got = _SLIDE_SETS[key]
    if isinstance(got, WsideidError):
        raise type(got)(str(got))
    return got


_SAME_SLIDE = ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "ContainerIdentifier")


def load_slide(path: str, series: str | None) -> DicomSource:
    """One slide of a DICOM input with its instances read in full (``source.read_instance``).

    Why not ``select(load(path), series)``: a folder of N slides run as a batch would read every
    header of the folder in full once per slide (N x the per-frame sequences). The folder is
    grouped from its cached grouping headers (``cached_slide_set``, read once while unchanged);
    only the chosen slide's files (and the orphans, where a damaged file lands) are read in full,
    and each must still say what its grouping header said (a file rewritten in between is
    refused, never grouped by stale facts).
    """
    from .source import folder_files, load, read_instance
    if series is ALL_SLIDES or not os.path.isdir(path):
        return select(load(path), series)
    found = cached_slide_set(path)
    slide = pick(found, series)
    files, skipped = folder_files(path)
    full = [read_instance(light.path, light.index) for light in slide.instances]
    for orphan in found.orphans:  # read in full too: a damaged file (its broken header makes it an orphan)
        if orphan.index >= len(files):
            raise MalformedFile(f"instance {orphan.index}: the folder changed while it was read; run again")
        read_instance(files[orphan.index], orphan.index)  # refuses the folder, as reading it whole did
    for light, inst in zip(slide.instances, full):
        if inst.role != light.role or any(_text(inst, k) != _text(light, k) for k in _SAME_SLIDE):
            raise MalformedFile(f"instance {light.index}: the file changed while the folder was read; run again")
    return DicomSource(path, True, full, skipped, orphans=list(found.orphans), other_slides=len(found.slides) - 1)


def slide_files(path: str, series: str | None) -> list[str]:
    """The files of one slide (what its pseudonym is taken from): the same selection the driver
    makes (``pick``), from the folder's cached grouping (a folder is not read once per slide)."""
    if series is not ALL_SLIDES and os.path.isdir(path):
        return [i.path for i in pick(cached_slide_set(path), series).instances]
    from .source import load, quiet_pydicom
    with quiet_pydicom():
        return [i.path for i in select(load(path), series).instances]
