"""Detector failures the caller is expected to handle (all WsideidError)."""
from ..errors import WsideidError


class DetectorError(WsideidError):
    """A PHI detector could not run; nothing about the image was concluded."""


class OcrUnavailable(DetectorError):
    """Tesseract is not installed or not runnable.

    Raised rather than returning "no text": an absent OCR engine must never
    look like a clean label. The caller decides whether to fail the slide or
    route it to manual review.
    """


class UnreadableImage(DetectorError):
    """A label image file could not be opened or decoded."""
