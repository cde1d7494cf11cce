"""The conversion step of ``deid SLIDE --to-dicom``: wsidicomizer on an already de-identified slide.

The runner (``wsideid.pipeline``) chains the two drivers around it: the TIFF
run first (labels and macros gone, metadata scrubbed, verified), this step,
then the DICOM run on the folder it made (profile, keyed UIDs, the full
verification), so the published folder passed both.
"""

from __future__ import annotations

import warnings

from ..errors import UnsupportedFormat, WsideidError
from .failures import third_party


def _metadata(new_id: str):
    from wsidicom.metadata import Patient, Slide, Study
    from wsidicomizer.metadata import WsiDicomizerMetadata

    return WsiDicomizerMetadata(study=Study(identifier=new_id[:16]), patient=Patient(name=new_id, identifier=new_id),
                                slide=Slide(identifier=new_id))


# What a KeyError inside wsidicomizer/opentile means: the metadata key the source lacks.
MISSING = {"MPP": "the pixel spacing (Aperio MPP, microns per pixel), which DICOM WSI requires",
           "AppMag": "the objective magnification (Aperio AppMag)"}


def _conversion_failure(exc: BaseException) -> str:
    """One line saying what the source lacks, when the converter says which key it missed;
    the key names come from the converter's code, never from the slide's values."""
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    if isinstance(key, str) and key in MISSING:
        return f"--to-dicom: the source lacks {MISSING[key]}; wsidicomizer cannot convert it"
    return third_party("wsidicomizer could not convert the de-identified slide", exc)


def dicomize(tiff_path: str, dcm_dir: str, new_id: str | None) -> None:
    """Wrap a de-identified TIFF-family slide's tiles into DICOM WSI instances in ``dcm_dir``,
    without re-encoding; patient, study and slide identity come from the research ID only."""
    try:
        from wsidicomizer import WsiDicomizer
    except ImportError:
        raise UnsupportedFormat("--to-dicom needs wsidicomizer (pip install wsidicomizer)") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            WsiDicomizer.convert(tiff_path, dcm_dir, metadata=_metadata(new_id or "DEIDENTIFIED"), include_label=False,
                                 include_overview=False, include_confidential=False, workers=1)
    except Exception as exc:  # noqa: BLE001 - wsidicomizer raises many types
        raise WsideidError(_conversion_failure(exc)) from None


def check_available() -> None:
    """Refuse --to-dicom up front (before any work) when wsidicomizer is missing."""
    try:
        import wsidicomizer  # noqa: F401
    except ImportError:
        raise UnsupportedFormat("--to-dicom needs wsidicomizer (pip install wsidicomizer)") from None
