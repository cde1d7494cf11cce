"""DICOM WSI: Annex E de-identification with keyed UIDs, on the core pipeline.

The runner (``wsideid.pipeline``) takes a DICOM slide through the same stages
as any other (plan, write, verify, publish, audit) via its driver,
``wsideid.drivers.dicom``; its unit is a slide made of several instances
(files), a Part 10 file or a folder of them.

This module itself must stay free of pydicom imports: the dispatch checks
call ``is_dicom_input`` for every input, TIFF ones too.
"""

from __future__ import annotations

from ..sniff import is_dicom_file, is_dicom_input  # noqa: F401 - the checks callers know by this name

NAME = "dicom"
