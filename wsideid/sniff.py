"""What a file is, from its first bytes: the checks every layer may call cheaply.

Why a module of its own: the runner, naming and the batch all need "is this
DICOM?" before anything is parsed, and the refusal message of an unsupported
file names what it looks like. Both are data here, below every driver, and
import nothing heavy (no pydicom, no tifffile).

``REFUSED`` lists the formats recognised only to be refused by name (a
whole-slide format this tool does not de-identify, or a file that is not a
slide at all). One table, one line per format: a helper adding a format to
refuse adds a line here and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HEAD_BYTES = 132  # enough for the DICOM preamble and every magic below


@dataclass(frozen=True)
class Magic:
    """A byte string at an offset, and what a file starting so is, in words."""

    what: str
    magic: bytes
    offset: int = 0

    def matches(self, head: bytes) -> bool:
        return head[self.offset:self.offset + len(self.magic)] == self.magic


REFUSED: tuple[Magic, ...] = (
    Magic("a JPEG image", b"\xff\xd8\xff"),
    Magic("a PNG image", b"\x89PNG"),
    Magic("a ZIP archive", b"PK\x03\x04"),
    Magic("a PDF document", b"%PDF"),
    Magic("a GIF image", b"GIF8"),
    Magic("a BMP image", b"BM"),
    Magic("a JPEG 2000 file", b"\x00\x00\x00\x0cjP"),
    Magic("an XML document", b"<?xml"),
)
DICOM = Magic("a DICOM file", b"DICM", 128)


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def describe_bytes(head: bytes) -> str:
    """What the bytes look like, for a refusal message."""
    for m in REFUSED + (DICOM,):
        if m.matches(head):
            return m.what
    if not head:
        return "an empty file"
    return f"unrecognised content (first bytes {head[:8].hex()})"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when the file has the DICM magic at offset 128 (Part 10 file)."""
    try:
        head = read_head(path)
    except OSError:
        return False
    return len(head) == HEAD_BYTES and DICOM.matches(head)


def is_dicom_input(path: str | os.PathLike) -> bool:
    """A DICOM file, or a folder holding at least one DICOM file (not recursive)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            names = os.listdir(path)
        except OSError:
            return False
        return any(is_dicom_file(os.path.join(path, n)) for n in names
                   if os.path.isfile(os.path.join(path, n)))
    return os.path.isfile(path) and is_dicom_file(path)
