"""PHI detectors for slide label, macro and thumbnail images.

Everything here works on PIL images and knows nothing about slide file
formats (except the small image-file loader in :mod:`.scan`), so the same
code serves SVS labels, NDPI macros and DICOM LABEL instances alike.

Entry points: :func:`scan_image` (barcodes + OCR + PHI flags),
:func:`locate_label` (where the physical label sits on a macro).
The replacement label is made by ``wsideid.label_image``, not here.
"""
from .errors import DetectorError, OcrUnavailable, UnreadableImage
from .findings import Box, Finding, PhiFlag
from .label_location import locate_label, ndpi_label_hint
from .scan import ScanResult, load_image_file, scan_image

__all__ = [
    "Box",
    "DetectorError",
    "Finding",
    "OcrUnavailable",
    "PhiFlag",
    "ScanResult",
    "UnreadableImage",
    "load_image_file",
    "locate_label",
    "ndpi_label_hint",
    "scan_image",
]
