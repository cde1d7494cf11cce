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
from dataclasses import dataclass
from typing import Iterator

import pydicom
from pydicom.dataset import Dataset

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


@dataclass
class DicomSource:
    path: str
    is_folder: bool
    instances: list[Instance]
    skipped: int  # non-DICOM files in the folder (not copied)


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


def read_instance(path: str, index: int) -> Instance:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                start = fh.tell()
            ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            if ts is None:
                raise MalformedFile(f"instance {index}: no transfer syntax in the file meta information")
            ts = pydicom.uid.UID(str(ts))
            if ts.is_deflated or not ts.is_little_endian:
                raise UnsupportedFormat(f"instance {index}: transfer syntax {ts} is not supported ({SUPPORTED_SYNTAXES_NOTE})")
            span = read_span(path, start, ts.is_implicit_VR)
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


def load(path: str) -> DicomSource:
    """All instances of the input, in a stable (name-sorted) order."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
        files = [os.path.join(path, n) for n in names if is_dicom_file(os.path.join(path, n))]
        if not files:
            raise UnsupportedFormat("the folder holds no DICOM file")
        if len(files) > MAX_INSTANCES:
            raise UnsupportedFormat(f"the folder holds more than {MAX_INSTANCES} DICOM files")
        insts = [read_instance(f, i) for i, f in enumerate(files)]
        return DicomSource(path, True, insts, len(names) - len(files))
    if not is_dicom_file(path):
        raise UnsupportedFormat("not a DICOM file")
    return DicomSource(path, False, [read_instance(path, 0)], 0)
