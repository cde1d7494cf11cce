"""Which DICOM slides each independent reader supports, judged from their headers alone.

Why: the readers check (``verify._check_readers``) must not read "the input
did not open either" as a pass. A reader's failure on the input says nothing
about the output (an attacker or a bug could make both unreadable), so the
check is declared ``not-applicable`` only where the reader does not support
this kind of slide at all (a transfer syntax, colour model or sample layout
it never decodes), decided from the headers before any reader runs. Wherever
the reader supports the input or the output, the output must open.

The rules mirror the readers' own: OpenSlide's DICOM driver
(``src/openslide-vendor-dicom.c``: accepted ImageType values, transfer
syntaxes, 8-bit three-sample pixels, colour models per syntax) and wsidicom's
``WsiDataset.is_supported_wsi_dicom`` (SOP class, attributes it dereferences,
image flavour, pixel representation, planar configuration). Where a rule is
unsure (wsidicom's decoders depend on the packages installed) it says
"supported": a wrong guess then refuses a slide, never passes one unseen.
"""

from __future__ import annotations

from typing import Iterable

from pydicom.dataset import Dataset

from .readers import Reader

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"

# OpenSlide: ImageType values it takes as pyramid levels, and as associated images
_OS_LEVEL_TYPES = {("ORIGINAL", "PRIMARY", "VOLUME", "NONE"), ("DERIVED", "PRIMARY", "VOLUME", "NONE"),
                   ("DERIVED", "PRIMARY", "VOLUME", "RESAMPLED")}
_OS_ASSOCIATED_TYPES = {(a, "PRIMARY", kind, last) for a in ("ORIGINAL", "DERIVED")
                        for kind, last in (("LABEL", "NONE"), ("OVERVIEW", "NONE"), ("THUMBNAIL", "RESAMPLED"))}
# transfer syntax -> the colour models OpenSlide decodes in it
_OS_SYNTAXES = {
    "1.2.840.10008.1.2.1": {"RGB"},  # explicit VR little endian, uncompressed
    "1.2.840.10008.1.2.4.50": {"YBR_FULL_422", "RGB"},  # JPEG baseline
    "1.2.840.10008.1.2.4.90": {"YBR_ICT", "RGB"},  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": {"YBR_ICT", "RGB"},  # JPEG 2000
}
_OS_FIXED = (("PlanarConfiguration", 0, True), ("BitsAllocated", 8, True), ("BitsStored", 8, True),
             ("HighBit", 7, True), ("SamplesPerPixel", 3, True), ("PixelRepresentation", 0, True),
             ("TotalPixelMatrixFocalPlanes", 1, False))

# wsidicom: attributes it dereferences when opening an instance, and the image flavours it knows
_WD_REQUIRED = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "ImageType", "Rows", "Columns",
                "TotalPixelMatrixColumns", "TotalPixelMatrixRows", "SamplesPerPixel", "PhotometricInterpretation",
                "BitsStored")
_WD_FLAVOURS = {"VOLUME", "LABEL", "OVERVIEW", "THUMBNAIL"}


def _image_type(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ImageType")
    if value is None:
        return ()
    return tuple(str(v).upper() for v in (value if not isinstance(value, str) else [value]))


def _syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _openslide_instance(ds: Dataset) -> str | None:
    """Why OpenSlide refuses this instance (None: it reads it, or ignores it as not its kind)."""
    syntax = _syntax(ds)
    models = _OS_SYNTAXES.get(syntax)
    if models is None:
        return f"transfer syntax {syntax or 'missing'}"
    for keyword, want, required in _OS_FIXED:
        got = _int(ds, keyword)
        if (got is None and required) or (got is not None and got != want):
            return f"{keyword} {got}"
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in models:
        return f"{photometric or 'no'} colour model in {syntax}"
    return None


def _openslide(instances: list[Dataset]) -> str | None:
    """OpenSlide opens a series when one instance is a pyramid level and every instance of a
    kind it takes (level, label, overview, thumbnail) has a pixel format it decodes."""
    if not any(str(ds.get("SOPClassUID", "")) == WSI_SOP_CLASS for ds in instances):
        return "not a VL Whole Slide Microscopy series"
    levels = [ds for ds in instances if _image_type(ds) in _OS_LEVEL_TYPES]
    if not levels:
        return "no instance with an ImageType OpenSlide takes as a level"
    for ds in levels + [ds for ds in instances if _image_type(ds) in _OS_ASSOCIATED_TYPES]:
        why = _openslide_instance(ds)
        if why is not None:
            return why
    return None


def _wsidicom_instance(ds: Dataset) -> str | None:
    if str(ds.get("SOPClassUID", "")) != WSI_SOP_CLASS:
        return "not a VL Whole Slide Microscopy instance"
    missing = [kw for kw in _WD_REQUIRED if kw not in ds]
    if missing:
        return f"no {missing[0]}"
    image_type = _image_type(ds)
    if len(image_type) < 3 or image_type[2] not in _WD_FLAVOURS:
        return f"ImageType {'/'.join(image_type) or 'missing'}"
    for keyword in ("PixelRepresentation", "PlanarConfiguration"):
        if (_int(ds, keyword) or 0) != 0:
            return f"{keyword} {_int(ds, keyword)}"
    return None


def _wsidicom(instances: list[Dataset]) -> str | None:
    """wsidicom opens a series with a VOLUME instance it supports (it skips the others)."""
    reasons = []
    for ds in instances:
        why = _wsidicom_instance(ds)
        if why is None and _image_type(ds)[2] == "VOLUME":
            return None
        reasons.append(why or "not a VOLUME")
    return reasons[0] if reasons else "no instance"


def unsupported(reader: Reader, instances: Iterable[Dataset]) -> str | None:
    """Why ``reader`` does not support the series these headers make up, or None when it does."""
    headers = list(instances)
    return _openslide(headers) if reader is Reader.OPENSLIDE else _wsidicom(headers)
