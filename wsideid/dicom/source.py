"""Open a DICOM WSI input: one file, or a folder of instances.

Headers are read with pydicom up to the pixel data (never the pixels), the
pixel data element is located by ``pixels.read_span``, and each instance
gets an image role from its ImageType. Every failure to read becomes a
one-line MalformedFile naming the instance by position, never by file name
(names can hold PHI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import pydicom
from pydicom.dataset import Dataset

from ..budget import Budget
from ..errors import MalformedFile, UnsupportedFormat, WsideidError
from . import is_dicom_file
from .pixels import PixelSpan, read_span

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
ROLE_BY_FLAVOR = {"VOLUME": "level", "THUMBNAIL": "thumbnail", "LABEL": "label", "OVERVIEW": "overview"}
SUPPORTED_SYNTAXES_NOTE = "explicit or implicit VR little endian, native or encapsulated"
MAX_INSTANCES = 5000


@dataclass
class Instance:
    index: int
    path: str
    ds: Dataset  # header only (no pixel data)
    span: PixelSpan | None
    role: str
    trailing: bool  # bytes after the pixel data element (dropped)

    @property
    def study_series(self) -> tuple[str, str]:
        return str(self.ds.get("StudyInstanceUID", "")), str(self.ds.get("SeriesInstanceUID", ""))


@dataclass(frozen=True)
class Orphan:
    """An instance of the folder that belongs to no slide (see ``dicom.slides``); ``index`` is its position."""

    index: int
    role: str
    reason: str

    def __str__(self) -> str:
        return f"instance {self.index} ({self.role}): {self.reason}"


@dataclass
class DicomSource:
    path: str
    is_folder: bool
    instances: list[Instance]  # one slide's (``dicom.slides.select``), or every instance of the input
    skipped: int  # non-DICOM files in the folder (not copied)
    orphans: list[Orphan] = field(default_factory=list)  # the folder's instances that belong to no slide
    other_slides: int = 0  # the folder's other slides (each is its own output)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom warns (and logs) about odd values; our errors are one line, so silence it for the run."""
    log = logging.getLogger("pydicom")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def int_attr(ds: Dataset, keyword: str, default: int = 0) -> int:
    """An integer attribute, ``default`` when absent, empty or not a number (the pixel and
    layout code reads sizes of headers that may be malformed; those are refused elsewhere)."""
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def role_of(ds: Dataset) -> str:
    """LABEL / OVERVIEW / THUMBNAIL / VOLUME from ImageType value 3; anything else is 'other'."""
    if str(ds.get("SOPClassUID", "")) != WSI_SOP_CLASS:
        return "other"
    try:
        it = ds.get("ImageType")
        if it is None or isinstance(it, (bytes, bytearray)):
            values = []
        else:
            values = [str(v).strip().upper() for v in ([it] if isinstance(it, str) else it)]
    except Exception:  # noqa: BLE001 - a malformed ImageType names no role
        values = []
    return ROLE_BY_FLAVOR.get(values[2], "other") if len(values) >= 3 else "other"


# Encapsulated syntaxes whose frames have a known start and end marker.
_JPEG_FAMILY = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_J2K_FAMILY = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.20")
_J2K_HEADS = (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c")


def check_fragments(path: str, span: PixelSpan, ts: str, frames, index: int, heads: bytes | None = None) -> None:
    """One fragment per frame, each starting with its codestream's start marker.

    Why: frames are copied untouched, so anything a fragment carries besides
    its image reaches the output. An extra fragment (text between frames)
    would be published as "pixels" (found by the
    DICOM fuzzer: a text fragment inserted into a JPEG-LS series); what
    follows a frame's EOI is dropped by the stream rule. Frames
    split across fragments are legal DICOM but no WSI writer we know makes
    them; refused rather than guessed.

    ``heads``: the 4 bytes at each fragment's offset as ``pixels.read_span`` read them with the
    item headers (the same bytes this read them for, once a fragment); judged as rows of a matrix.
    """
    try:
        n_frames = int(frames)
    except (TypeError, ValueError):
        raise MalformedFile(f"instance {index}: NumberOfFrames is not a number") from None
    if len(span.fragments) != n_frames:
        raise MalformedFile(f"instance {index}: {len(span.fragments)} pixel fragments for {n_frames} frames "
                            "(one fragment per frame is supported)")
    jpeg = ts.startswith(_JPEG_FAMILY)
    j2k = ts.startswith(_J2K_FAMILY)
    if not (jpeg or j2k):
        return
    # The head only: bytes after a frame's first true EOI are the stream rule's
    # (dicom/frames.py drops them and verification re-parses every frame); a
    # tail check would refuse what the rule cleans, and pass text ending in FF D9.
    if heads is not None and len(heads) == 4 * len(span.fragments):
        import numpy as np
        rows = np.frombuffer(heads, np.uint8).reshape(-1, 4)
        if jpeg:
            good = (rows[:, 0] == 0xFF) & (rows[:, 1] == 0xD8)
        else:
            good = np.zeros(len(rows), bool)
            for want in _J2K_HEADS:
                good |= (rows == np.frombuffer(want, np.uint8)).all(axis=1)
        bad = np.flatnonzero(~good)
        if len(bad):
            _no_start_marker(index, int(bad[0]), jpeg)
        return
    with open(path, "rb") as fh:
        for k, (off, n) in enumerate(span.fragments):
            fh.seek(off)
            head = fh.read(4)
            if not (head.startswith(b"\xff\xd8") if jpeg else head in _J2K_HEADS):
                _no_start_marker(index, k, jpeg)


def _no_start_marker(index: int, k: int, jpeg: bool) -> None:
    raise MalformedFile(f"instance {index}: frame {k} does not start with a "
                        f"{'JPEG' if jpeg else 'JPEG 2000'} start marker")


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_IMPLICIT_LE = b"1.2.840.10008.1.2"
_DEFLATED = b"1.2.840.10008.1.2.1.99"


class _Window:
    """A file's bytes by ``pread`` through a 1 MB window. Why not a map: an instance cut short
    while it was read made a read through the map a SIGBUS (the run died without a word); here
    the read comes back short and the walk stops, leaving pydicom to name the truncation."""

    SIZE = 1 << 20

    def __init__(self, fd: int):
        self.fd, self.start, self.buf = fd, 0, b""

    def get(self, pos: int, n: int) -> bytes:
        if not (self.start <= pos and pos + n <= self.start + len(self.buf)):
            self.start, self.buf = pos, os.pread(self.fd, max(n, self.SIZE), pos)
        return self.buf[pos - self.start:pos - self.start + n]


def prescan(path: str, index: int) -> None:
    """Charge the header's elements and bytes to the slide budget before pydicom builds anything.

    Why: pydicom reads the whole header into objects (a 480 MB private
    value, or millions of tiny elements, cost gigabytes before any check
    of ours could run). This walk reads element headers only, through a
    1 MB window, descending into sequences and items, and stops at the pixel
    data. Defined-length values are skipped, not read, so it costs time
    linear in the number of elements and no memory beyond the counters.
    A deflated dataset is refused here: pydicom inflates it whole before
    anything can be checked (a 1 MB file inflating to 1 GB grew a run to
    2 GB of RSS and hung it).
    The budget is wsideid.budget's: MAX_METADATA_BYTES of header and
    MAX_ENTRIES elements per instance.
    """
    import struct

    b = Budget()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 140:
            return  # pydicom's own error names it
        w = _Window(fh.fileno())
        pos = 132 if w.get(128, 4) == b"DICM" else 0
        implicit = False
        while pos + 8 <= size:
            head8 = w.get(pos, 8)
            if len(head8) < 8:
                return  # the file got shorter while read: pydicom's error names it
            g, e = struct.unpack_from("<HH", head8)
            if (g, e) == (0x7FE0, 0x0010):
                return
            b.charge_entries(1, f"instance {index}: header")
            if g == 0xFFFE:  # item or delimiter: its content follows as elements
                pos += 8
                continue
            vr = head8[4:6]
            if g == 0x0002 or not implicit:
                if vr in _LONG_VRS:
                    long_len = w.get(pos + 8, 4)
                    if len(long_len) < 4:
                        return
                    length = struct.unpack("<I", long_len)[0]
                    head = 12
                else:
                    length = struct.unpack_from("<H", head8, 6)[0]
                    head = 8
            else:
                vr = b""
                length = struct.unpack_from("<I", head8, 4)[0]
                head = 8
            if (g, e) == (0x0002, 0x0010):
                syntax = w.get(pos + head, min(length, 64)).rstrip(b"\0 ")
                implicit = syntax == _IMPLICIT_LE
                if syntax.strip(b"\0 ") == _DEFLATED:  # pydicom inflates the whole dataset in memory first
                    raise UnsupportedFormat(f"instance {index}: transfer syntax {_DEFLATED.decode()} (deflated"
                                            f" dataset) is not supported ({SUPPORTED_SYNTAXES_NOTE})")
            if length == 0xFFFFFFFF or vr == b"SQ":
                pos += head  # descend into the sequence
                continue
            if pos + head + length > size:
                return  # truncated: pydicom's error names it
            b.charge_bytes(length, f"instance {index}: header")
            pos += head + length


def check_native_length(span: PixelSpan, ds, index: int) -> None:
    """Native pixel data holds Rows x Columns x SamplesPerPixel x frames pixels and at most one pad byte.

    Why: native frames are copied (or blanked) in place and the residual scan
    leaves pixel data out, so bytes after the last frame would be published
    unexamined (a name appended there was published: planted-PHI matrix)."""
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        raise MalformedFile(f"instance {index}: native pixel data without a readable size") from None
    expected = (rows * cols * spp * frames * bits + 7) // 8
    length = span.fragments[0][1] if span.fragments else span.size
    if length > expected + (expected % 2):
        raise MalformedFile(f"instance {index}: native pixel data holds {length - expected} bytes after its frames "
                            "(hidden data; refused)")


def read_instance(path: str, index: int) -> Instance:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prescan(path, index)
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                start = fh.tell()
            ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            if ts is None:
                raise MalformedFile(f"instance {index}: no transfer syntax in the file meta information")
            ts = pydicom.uid.UID(str(ts))
            if ts.is_deflated or not ts.is_little_endian:
                raise UnsupportedFormat(f"instance {index}: transfer syntax {ts} is not supported ({SUPPORTED_SYNTAXES_NOTE})")
            heads = bytearray()
            span = read_span(path, start, ts.is_implicit_VR, heads)
            if span is not None and span.encapsulated:
                check_fragments(path, span, str(ts), ds.get("NumberOfFrames", 1), index, heads)
            elif span is not None:
                check_native_length(span, ds, index)
            # Force every element to be parsed now: bad values fail here, not mid-write.
            for _ in ds.iterall():
                pass
            for _ in ds.file_meta:
                pass
    except WsideidError:
        raise
    except (OSError, EOFError) as exc:
        raise MalformedFile(f"instance {index}: cannot read ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on hostile input
        raise MalformedFile(f"instance {index}: not a readable DICOM file ({type(exc).__name__})") from None
    role = role_of(ds)
    if span is None and role != "other":
        raise MalformedFile(f"instance {index}: an image without pixel data (truncated file?)")
    trailing = span is not None and span.end < os.path.getsize(path)
    return Instance(index, path, ds, span, role, trailing)


def check_no_special_files(path: str) -> None:
    """Refuse a folder holding a FIFO, socket or device (or a link to one). Why: the readers
    check hands the folder to OpenSlide, which opens every file in it: a FIFO with no writer
    blocked it (and the run) until the reader timeout, 10 minutes later."""
    import stat
    with os.scandir(path) as it:
        for entry in it:
            try:
                mode = os.stat(entry.path).st_mode
            except OSError:
                continue  # a dangling link or a loop: nothing can open it, nothing blocks
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise UnsupportedFormat("the folder holds a FIFO, socket or device file (a reader would block on it"
                                        " or read it without end): remove it")


def folder_files(path: str) -> tuple[list[str], int]:
    """A folder's DICOM files in a stable (name-sorted) order, their position being the instance's
    index, and how many other files it holds."""
    check_no_special_files(path)
    names = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
    files = [os.path.join(path, n) for n in names if is_dicom_file(os.path.join(path, n))]
    if not files:
        raise UnsupportedFormat("the folder holds no DICOM file")
    if len(files) > MAX_INSTANCES:
        raise UnsupportedFormat(f"the folder holds more than {MAX_INSTANCES} DICOM files")
    return files, len(names) - len(files)


def load(path: str) -> DicomSource:
    """All instances of the input, in a stable (name-sorted) order."""
    if os.path.isdir(path):
        files, skipped = folder_files(path)
        insts = [read_instance(f, i) for i, f in enumerate(files)]
        return DicomSource(path, True, insts, skipped)
    if not is_dicom_file(path):
        raise UnsupportedFormat("not a DICOM file")
    return DicomSource(path, False, [read_instance(path, 0)], 0)
