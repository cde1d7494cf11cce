"""Format detection from content (magic bytes, vendor markers), never the name.

Returns a small handle naming the format module; refusing messages say what
the bytes look like, so a user with a mislabelled file knows what they hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .errors import MalformedFile, UnsupportedFormat, WsideidError

_MAGIC = [
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x00\x0cjP", "a JPEG 2000 file"),
    (b"<?xml", "an XML document"),
]


@dataclass
class OpenedSlide:
    format: str
    module: ModuleType
    container: Any  # TiffFile for TIFF vendors


def describe_bytes(head: bytes) -> str:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    if not head:
        return "an empty file"
    return f"unrecognised content (first bytes {head[:8].hex()})"


def open_slide(path: str | os.PathLike) -> OpenedSlide:
    from .tiff.container import read_tiff, sniff
    from .vendors import detect_tiff_vendor, refused

    path = os.fspath(path)
    from . import dicom
    if os.path.isdir(path) and dicom.is_dicom_input(path):
        return OpenedSlide(dicom.NAME, dicom, path)  # a folder of DICOM instances
    refused.refuse_if_known(path)  # formats recognised and refused by name, with a conversion route
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except IsADirectoryError:
        raise UnsupportedFormat("is a directory, not a slide file") from None
    except OSError as exc:
        raise WsideidError(f"cannot read the input: {exc.strerror}") from None
    if sniff(head[:8]) is not None:
        try:
            tf = read_tiff(path)
        except (MalformedFile, UnsupportedFormat):
            raise
        except (ValueError, OverflowError, MemoryError, IndexError) as exc:
            raise MalformedFile(f"corrupt TIFF structure ({type(exc).__name__})") from None
        if not tf.ifds:
            raise MalformedFile("TIFF has no image directories")
        mod = detect_tiff_vendor(tf)
        return OpenedSlide(mod.NAME, mod, tf)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return OpenedSlide(dicom.NAME, dicom, path)  # wsideid.dicom.pipeline handles it
    raise UnsupportedFormat(f"not a supported slide: the file is {describe_bytes(head)}")
