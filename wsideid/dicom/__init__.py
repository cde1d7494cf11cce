"""DICOM WSI: Annex E de-identification with keyed UIDs, on the core pipeline.

The flow mirrors the TIFF one (inventory, plan, apply, verify, publish,
audit), but its unit is a slide made of several instances (files), so it has
its own driver (``wsideid.dicom.pipeline``) that ``wsideid.pipeline``
dispatches to when the input is a DICOM file or a folder of them.

This module itself must stay free of pydicom imports: the dispatch checks
call ``is_dicom_input`` for every input, TIFF ones too.
"""

from __future__ import annotations

import os

NAME = "dicom"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when the file has the DICM magic at offset 128 (Part 10 file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


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


def inventory(container) -> None:
    """Format-module interface used by ``wsideid scan``: DICOM is not scanned by the detectors.

    A DICOM slide is several instances, planned by ``wsideid.dicom.plan``; the
    TIFF-style single-container inventory does not apply, so say so in one line.
    """
    from ..errors import WsideidError
    raise WsideidError("DICOM instances are not scanned by the detectors (LABEL/OVERVIEW instances are removed by deid)")
