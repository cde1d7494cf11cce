"""Format drivers: one per slide format, all behind one contract (``base.Driver``).

The runner (``wsideid.pipeline``) knows no format; it asks the registry
(``wsideid.registry``) which driver claims an input and takes that driver
through open -> plan -> write -> verify, then publishes. ``tiff`` drives every
TIFF-family vendor module (``wsideid.tiff_family.vendors``); ``dicom`` drives DICOM WSI.
"""
