"""What a file is, from its first bytes: the checks every layer may call cheaply.

Why a module of its own: the runner, naming and the batch all need "is this
DICOM?" before anything is parsed, and the refusal message of an unsupported
file names what it looks like. Both are data here, below every driver, and
import nothing heavy (no pydicom, no tifffile).

What a file that is not a slide looks like (a JPEG, a PDF, ...) comes from
the one table of refused files, ``wsideid.refused.REFUSED``.
"""

from __future__ import annotations

import os

from .refused import Magic, looks_like, read_head

HEAD_BYTES = 132  # enough for the DICOM preamble and every magic of refused.REFUSED's non-slides
DICOM = Magic(b"DICM", 128)


def describe_bytes(head: bytes) -> str:
    """What the bytes look like, for a refusal message."""
    seen = looks_like(head)
    if seen is not None:
        return seen.name
    if DICOM.matches(head):
        return "a DICOM file"
    if not head:
        return "an empty file"
    return f"unrecognised content (first bytes {head[:8].hex()})"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when the file has the DICM magic at offset 128 (Part 10 file)."""
    try:
        head = read_head(path, HEAD_BYTES)
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
