"""The TIFF family: every format whose container is TIFF (SVS, NDPI, Philips, BIF, SCN, OME-TIFF, QPTIFF, generic).

Beside ``wsideid.dicom`` and ``wsideid.mrxs``. The container itself (parse,
edit, write) is ``wsideid.tiff``, below every format; this package holds what
the formats add on top: the vendor modules (roles, fields, description
syntax), lossless blanking (``redaction``), the generated label IFD
(``labels``), XML scrubbing, in-place mode and the verifier.
"""
