"""Pseudonym maps: which new UID and new PatientID stand for which original.

Repositories must prove which pseudonym maps to which source (MIDI-B-style
validation asks for a UID mapping and a patient-ID mapping file), and a lab
must be able to answer "which slide is 2.25.123...?" months later. Each
DICOM run therefore appends, in the review folder (it holds PHI; never in
OUTDIR), ``uid-map.csv`` (``id_old,id_new`` for every UID replaced) and
``patient-map.csv`` (``id_old,id_new`` for the PatientID).

Keyed replacement (wsideid.dicom.uids) gives the same new value in every run
with the same secret, so a rerun adds nothing and a second slide adds only
its own rows: the files stay free of duplicates. A run whose mapping
contradicts the file (an original already mapped to something else, i.e.
another secret was used with this review folder) is an error before the
output is published: two secrets in one mapping would make it useless as
proof. One original UID maps to one new UID and back; several original
PatientIDs may map to one new one (a subject known under two MRNs), never
the reverse.

Cells pass through wsideid.cells (OWASP apostrophe) on the way out and back.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import errno
import fcntl
import io
import os
from dataclasses import dataclass
from typing import Iterable

from .cells import csv_line, unescape
from .errors import WsideidError
from .safefs import read_fd

COLUMNS = ("id_old", "id_new")


class MapKind(enum.Enum):
    """The two maps, by file name; ``both_ways`` says whether a new value must map back to one original."""

    UID = "uid-map.csv"
    PATIENT = "patient-map.csv"

    @property
    def both_ways(self) -> bool:
        return self is MapKind.UID


class MapConflict(WsideidError):
    """The run's mapping contradicts the review folder's (another secret, or a hand-edited map)."""


@dataclass(frozen=True)
class Match:
    """One answer of :func:`lookup`: in which map, and whether the value was the old or the new one."""

    kind: MapKind
    id_old: str
    id_new: str
    matched: str  # "old" | "new"


def map_path(review: str, kind: MapKind) -> str:
    return os.path.join(review, kind.value)


# Bytes a map may have: ~1.5 kB a DICOM slide (its UIDs and PatientID), so some 20,000 slides a
# review folder. Each map was read whole: /dev/zero or a 1 GB sparse map ran a run out of memory,
# a FIFO hung it.
MAX_MAP_BYTES = 32 << 20


def _decode(data: bytes, kind: MapKind) -> str:
    """The map's text: UTF-8 as written (a spreadsheet's BOM or UTF-16 re-save read too, so a
    lookup still answers); anything else one line, not a traceback."""
    from .tables import decode_text
    return decode_text(data, kind.value)


def _rows(text: str, kind: MapKind = MapKind.UID) -> list[tuple[str, str]]:
    """The (old, new) rows, checked: strict CSV (a quote left open swallowed every row appended
    after it, so the map lost them without a word), two cells a row, and no row contradicting an
    earlier one (an original mapped twice; for UIDs also a new value standing for two originals)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[tuple[str, str]] = []
    try:
        header = next(reader, None)
        if header is None:
            return out
        if tuple(unescape(h) for h in header) != COLUMNS:
            raise WsideidError(f"{kind.value} has an unexpected header (expected id_old,id_new)")
        for row in reader:
            if not row or row == [""]:
                continue
            if len(row) != 2:
                raise WsideidError(f"line {reader.line_num} of {kind.value} has {len(row)} cells, not 2"
                                   " (id_old,id_new): the map is damaged; nothing was written")
            out.append((unescape(row[0]), unescape(row[1])))
    except csv.Error as exc:
        raise WsideidError(f"{kind.value} is not a valid CSV file (line {reader.line_num}: {exc}): the map is"
                           " damaged; nothing was written") from None
    _check_consistent(out, kind)
    return out


def _check_consistent(rows: list[tuple[str, str]], kind: MapKind) -> None:
    by_old: dict[str, str] = {}
    by_new: dict[str, str] = {}
    for n, (old, new) in enumerate(rows, start=2):
        if by_old.setdefault(old, new) != new or (kind.both_ways and by_new.setdefault(new, old) != old):
            raise MapConflict(f"{kind.value} contradicts itself at row {n} (one value mapped two ways:"
                              " hand-edited, or two secrets?); fix the map; nothing was written")


def _read_limited(fd: int, kind: MapKind) -> bytes:
    """The whole map from an open descriptor, refused when it is no regular file or too large."""
    import stat
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise WsideidError(f"{kind.value} in the review folder is not a regular file")
    _check_size(st.st_size, kind)
    os.lseek(fd, 0, os.SEEK_SET)
    data = read_fd(fd, MAX_MAP_BYTES + 1)
    _check_size(len(data), kind)
    return data


def _check_size(size: int, kind: MapKind) -> None:
    if size > MAX_MAP_BYTES:
        raise WsideidError(f"{kind.value} is larger than {MAX_MAP_BYTES >> 20} MB: start a new review folder")


def read_map(review: str, kind: MapKind) -> list[tuple[str, str]]:
    """The (old, new) rows of one map; empty when the file does not exist."""
    from .tables import read_table_file
    path = map_path(review, kind)
    if not os.path.lexists(path):
        return []
    with contextlib.suppress(OSError):  # told before it is read (a 1 GB sparse map), else by the read
        _check_size(os.stat(path).st_size, kind)
    return _rows(_decode(read_table_file(path, kind.value, MAX_MAP_BYTES), kind), kind)


def _open_locked(path: str) -> int:
    """The map file opened read-write (created if missing), not through a link, under an exclusive lock.

    The lock serialises batch workers and concurrent runs sharing a review
    folder: each reads the whole map, checks and appends while holding it.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WsideidError(f"refusing to write through a symbolic link: {os.path.basename(path)}") from None
        raise WsideidError(f"cannot write {os.path.basename(path)} in the review folder: {exc.strerror}") from None
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _read_fd(fd: int, kind: MapKind) -> str:
    """The map's text for an append: UTF-8 only (with or without a BOM), since UTF-8 rows are
    appended to it; a map a spreadsheet saved as UTF-16 is refused, not mixed."""
    data = _read_limited(fd, kind)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise WsideidError(f"{kind.value} was saved as UTF-16 (by a spreadsheet?): save it as CSV UTF-8;"
                           " nothing was written")
    return _decode(data, kind)


def _write_all(fd: int, data: bytes, kind: MapKind) -> None:
    """Append ``data`` whole, or leave the map as it was: one ``write`` that the disk or the file
    size limit cut short left half a row, which the next run read as a mapping."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise WsideidError(f"cannot write {kind.value} in the review folder: {exc.strerror}; the map is as it"
                           " was and nothing was published") from None


def new_rows(existing: Iterable[tuple[str, str]], pairs: Iterable[tuple[str, str]], kind: MapKind) -> list[tuple[str, str]]:
    """The pairs not yet in the map, in order; raises MapConflict on a contradiction."""
    by_old: dict[str, str] = {}
    by_new: dict[str, str] = {}
    for old, new in existing:
        by_old.setdefault(old, new)
        by_new.setdefault(new, old)
    out = []
    for old, new in pairs:
        if not old or not new:
            continue
        known = by_old.get(old)
        if known is not None and known != new:
            if kind is MapKind.PATIENT:  # the common case: a second slide of one patient under its own research ID
                raise MapConflict("patient-map.csv: this slide's PatientID already maps to another new PatientID "
                                  "(an earlier slide of the same patient, or another secret); give every slide of "
                                  "one patient the same subject (manifest column `subject`, or --subject) so they "
                                  "share one new PatientID; nothing published")
            raise MapConflict(f"{kind.value}: an original is already mapped to another value in the review folder"
                              " (another secret used with this review folder: a run without --secret-file uses a"
                              " random one; give every run of one study the same --secret-file, or use another"
                              " --review-dir); nothing published")
        if kind.both_ways and by_new.get(new, old) != old:
            raise MapConflict(f"{kind.value}: a new value already stands for another original; nothing published")
        if known is None:
            by_old[old] = new
            by_new.setdefault(new, old)
            out.append((old, new))
    return out


def append_pairs(review: str, kind: MapKind, pairs: Iterable[tuple[str, str]]) -> int:
    """Add the pairs the map lacks to ``<review>/<kind>`` under a lock; returns how many rows were added."""
    from .naming import make_review_dir
    from .safefs import check_no_links
    make_review_dir(review)
    path = map_path(review, kind)
    check_no_links(review, path)
    fd = _open_locked(path)
    try:
        text = _read_fd(fd, kind)
        rows = new_rows(_rows(text, kind), pairs, kind)
        if not rows:
            return 0
        data = ("" if text else csv_line(COLUMNS)) + "".join(csv_line(r) for r in rows)
        if text and not text.endswith(("\n", "\r")):
            data = "\n" + data
        _write_all(fd, data.encode("utf-8"), kind)
        return len(rows)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def record_maps(review: str, uids: dict[str, str], patients: Iterable[tuple[str, str]]) -> None:
    """Both maps for one run, checked before either is written (a conflict leaves both as they were)."""
    patients = list(patients)
    new_rows(read_map(review, MapKind.UID), uids.items(), MapKind.UID)
    new_rows(read_map(review, MapKind.PATIENT), patients, MapKind.PATIENT)
    append_pairs(review, MapKind.UID, sorted(uids.items()))
    append_pairs(review, MapKind.PATIENT, patients)


def lookup(review: str, value: str) -> list[Match]:
    """Every row of either map where ``value`` is the old or the new identifier (exact match)."""
    value = value.strip()
    out = []
    for kind in MapKind:
        for old, new in read_map(review, kind):
            if old == value:
                out.append(Match(kind, old, new, "old"))
            if new == value:
                out.append(Match(kind, old, new, "new"))
    return out


def patient_pairs(plan) -> list[tuple[str, str]]:
    """(original PatientID, new PatientID) of a DICOM plan: the top-level PatientID of each instance."""
    pairs = []
    for d in plan.fields:
        if d.field.key == "dicom:PatientID" and d.field.path.count("/") == 1 and d.new_value is not None:
            old, new = str(d.field.value).strip(), str(d.new_value).strip()
            if old and new and (old, new) not in pairs:
                pairs.append((old, new))
    return pairs


def dicom_patient_id(path: str, files: list[str] | None = None) -> str:
    """The PatientID of a DICOM file or folder (``files``: one slide's, ``dicom.slides.slide_files``),
    the date-shift subject when none was given.

    Every instance of the slide must agree: a slide mixing patients has no single subject.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .naming import content_files
    values = set()
    for f in files if files is not None else content_files(path):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["PatientID"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            raise WsideidError("cannot read the PatientID of the input to use it as the date-shift subject") from None
        values.add(str(ds.get("PatientID", "") or "").strip())
    values.discard("")
    if not values:
        raise WsideidError("--dates shift needs --subject: the DICOM input has no PatientID to use as the subject")
    if len(values) > 1:
        raise WsideidError("--dates shift needs --subject: the DICOM instances hold different PatientIDs")
    return values.pop()
