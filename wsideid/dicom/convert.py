"""The conversion step of ``deid SLIDE --to-dicom``: wsidicomizer on an already de-identified slide.

The runner (``wsideid.pipeline``) chains the two drivers around it: the TIFF
run first (labels and macros gone, metadata scrubbed, verified), this step,
then the DICOM run on the folder it made (profile, keyed UIDs, the full
verification), so the published folder passed both.

What the converter needs and a source may lack is asked for by name: the
pixel spacing (``--mpp UM``: written into an SVS intermediate's description
where opentile reads it, given to wsidicomizer as a default for sources read
through tiffslide). Sources wsidicomizer reads through opentile keep their
tile bytes; sources it can only read through tiffslide (generic TIFF, BIF,
SCN) are decoded and encoded again, losslessly (JPEG 2000 reversible,
``LOSSLESS``), so the published pixels are the verified TIFF's pixels.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Iterator

from ..errors import UnsupportedFormat, WsideidError
from .failures import third_party


@contextlib.contextmanager
def _pydicom_settings_kept() -> Iterator[None]:
    """Run wsidicomizer with pydicom's settings put back afterwards.

    Importing wsidicomizer switches pydicom, process-wide, to its "future"
    behaviour (writing validation RAISE, unknown keywords RAISE). Left on, every
    later DICOM read and write of the process (the DICOM run on the converted
    folder, the next slide of a batch) ran under other rules than a plain DICOM
    run does, so the same file could be judged two ways."""
    from pydicom import config
    saved = (config._use_future, config.INVALID_KEYWORD_BEHAVIOR, config.settings._writing_validation_mode,
             config.settings._reading_validation_mode)
    try:
        yield
    finally:
        (config._use_future, config.INVALID_KEYWORD_BEHAVIOR, config.settings._writing_validation_mode,
         config.settings._reading_validation_mode) = saved


def _metadata(new_id: str):
    from wsidicom.metadata import Patient, Slide, Study
    from wsidicomizer.metadata import WsiDicomizerMetadata

    # No Study ID from the research ID: the DICOM profile removes Study ID, and the parts of a
    # removed value are needles the verifier then finds in the research ID kept as Patient ID.
    return WsiDicomizerMetadata(study=Study(), patient=Patient(name=new_id, identifier=new_id),
                                slide=Slide(identifier=new_id))


# What a KeyError inside wsidicomizer/opentile means: the metadata key the source lacks, and
# the option that supplies it (None: nothing can).
MISSING = {"MPP": ("the pixel spacing (Aperio MPP, microns per pixel), which DICOM WSI requires",
                   "give it with --mpp UM (e.g. --mpp 0.25)"),
           "AppMag": ("the objective magnification (Aperio AppMag)", None)}
MPP_AGREEMENT = 0.01  # --mpp and a recorded MPP may differ by 1 % (rounding in the description)
_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?=\||$)")


NO_SPACING = "Could not determine pixel spacing"


def _conversion_failure(exc: BaseException, title: str | None = None) -> str:
    """One line saying what the source lacks, when the converter says which key it missed;
    the key names come from the converter's code, never from the slide's values."""
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    if isinstance(key, str) and key in MISSING:
        what, fix = MISSING[key]
        return f"--to-dicom: the source lacks {what}; wsidicomizer cannot convert it" + (f": {fix}" if fix else "")
    if isinstance(exc, ValueError) and NO_SPACING in str(exc):  # wsidicomizer's own words, no slide value
        what, fix = MISSING["MPP"]
        return f"--to-dicom: the source lacks {what.replace('Aperio MPP, ', '')}; wsidicomizer cannot convert it: {fix}"
    return third_party(f"wsidicomizer could not convert the de-identified {title or 'slide'}", exc)


def _defaults(mpp: float | None):
    """``--mpp`` as wsidicomizer's default metadata (used only where the source has no spacing)."""
    if mpp is None:
        return None
    from wsidicom.geometry import SizeMm
    from wsidicom.metadata import Image, Pyramid
    from wsidicomizer.metadata import WsiDicomizerMetadata
    return WsiDicomizerMetadata(pyramid=Pyramid(Image(pixel_spacing=SizeMm(mpp / 1000, mpp / 1000)), []))


def _how(tiff_path: str, mpp: float | None):
    """(encoding, default metadata) for wsidicomizer. Sources opentile reads keep their tiles and
    their own spacing (``--mpp`` reaches an SVS through ``supply_mpp``; a default given here would
    override what the file records). Sources only tiffslide reads are decoded and re-encoded as
    reversible JPEG 2000 (exact pixels), with ``--mpp`` as the spacing where tiffslide finds none;
    one it does find must agree."""
    from opentile import OpenTile
    from wsidicom.codec import Jpeg2kSettings
    try:
        copied = OpenTile.detect_format(tiff_path) is not None
    except Exception:  # noqa: BLE001 - not opentile's: tiffslide's then
        copied = False
    recorded = (_opentile_mpp if copied else _tiffslide_mpp)(tiff_path) if mpp is not None else None
    if mpp is not None and recorded is not None and abs(recorded - mpp) > MPP_AGREEMENT * mpp:
        raise WsideidError(f"--mpp {mpp:g} disagrees with the pixel spacing the slide records "
                           f"({recorded:g} microns per pixel)")
    if copied:
        return None, None
    return Jpeg2kSettings(levels=0), _defaults(mpp if recorded is None else None)


def _opentile_mpp(tiff_path: str) -> float | None:
    try:
        from opentile import OpenTile
        with OpenTile.open(tiff_path) as tiler:
            spacing = tiler.levels[0].pixel_spacing
        return float(spacing.width) * 1000 if spacing is not None else None
    except Exception:  # noqa: BLE001 - unreadable here: wsidicomizer will say so
        return None


def _tiffslide_mpp(tiff_path: str) -> float | None:
    try:
        import tiffslide
        with tiffslide.TiffSlide(tiff_path) as ts:
            value = ts.properties.get("tiffslide.mpp-x")
        return float(value) if value else None
    except Exception:  # noqa: BLE001 - unreadable here: wsidicomizer will say so
        return None


def dicomize(tiff_path: str, dcm_dir: str, new_id: str | None, mpp: float | None = None,
             title: str | None = None) -> None:
    """Wrap a de-identified TIFF-family slide's tiles into DICOM WSI instances in ``dcm_dir``
    (re-encoded losslessly only where wsidicomizer cannot copy them); patient, study and slide
    identity come from the research ID only. ``title``: the source format, for messages."""
    with _pydicom_settings_kept():
        _convert(tiff_path, dcm_dir, new_id, mpp, title)


def _convert(tiff_path: str, dcm_dir: str, new_id: str | None, mpp: float | None, title: str | None) -> None:
    try:
        from wsidicomizer import WsiDicomizer
    except ImportError:
        raise UnsupportedFormat("--to-dicom needs wsidicomizer (pip install wsidicomizer)") from None
    from pydicom import config
    config.future_behavior(True)  # the mode wsidicomizer's import asks for, for every conversion, not only the first
    encoding, defaults = _how(tiff_path, mpp)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            WsiDicomizer.convert(tiff_path, dcm_dir, metadata=_metadata(new_id or "DEIDENTIFIED"),
                                 default_metadata=defaults, include_label=False, include_overview=False,
                                 include_confidential=False, workers=1, encoding=encoding)
    except Exception as exc:  # noqa: BLE001 - wsidicomizer raises many types
        raise WsideidError(_conversion_failure(exc, title)) from None


def supply_mpp(tiff_path: str, mpp: float | None) -> None:
    """``--mpp``: the level-0 pixel spacing written into the de-identified intermediate SVS (never
    the input, never the published output: wsidicomizer reads it from there and DICOM records it as
    Pixel Spacing). A slide that records its own MPP must agree with ``--mpp``; formats that keep
    their resolution elsewhere (NDPI, OME, generic TIFF tags) are converted as they are."""
    if mpp is None:
        return
    if not 0 < mpp < 1000:
        raise WsideidError(f"--mpp {mpp:g} is not a pixel spacing in microns (0 < UM < 1000)")
    import tifffile
    try:
        with tifffile.TiffFile(tiff_path) as tf:
            if not tf.is_svs:
                return
            desc = tf.pages[0].description
    except (OSError, ValueError, tifffile.TiffFileError):
        raise WsideidError("--to-dicom: the de-identified slide could not be re-read to add --mpp") from None
    found = _MPP.search(desc)
    if found is not None:
        if abs(float(found.group(1)) - mpp) > MPP_AGREEMENT * mpp:
            raise WsideidError(f"--mpp {mpp:g} disagrees with the pixel spacing the slide records "
                               f"({float(found.group(1)):g} microns per pixel)")
        return
    tifffile.tiffcomment(tiff_path, f"{desc.rstrip()}|MPP = {mpp:g}", pageindex=0)


JPEG_BASELINE_TS = b"1.2.840.10008.1.2.4.50"
J2K_TS = b"1.2.840.10008.1.2.4.91"  # JPEG 2000 (reversible or irreversible): same length as the baseline UID
J2K_PHOTOMETRIC = {(True, True): "YBR_RCT", (False, True): "YBR_ICT", (True, False): "RGB", (False, False): "RGB"}


def fix_j2k_syntax(dcm_dir: str) -> list[str]:
    """wsidicomizer 0.26.1 wraps Aperio JPEG 2000 tiles (33003/33005) unchanged, which is what we
    want, but labels them JPEG Baseline: readers then fail on the first frame. Every instance it
    just wrote whose frames are JPEG 2000 codestreams gets the JPEG 2000 transfer syntax instead
    (the same UID length, patched in its file meta); its Photometric Interpretation must already
    match the codestream's colour transform, else the conversion is refused. Returns the files fixed."""
    import os

    import pydicom

    from ..jpeg.reencode import ReencodeError, j2k_params
    from .pixels import read_span
    fixed = []
    for name in sorted(os.listdir(dcm_dir)):
        path = os.path.join(dcm_dir, name)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if str(ds.file_meta.get("TransferSyntaxUID", "")).encode() != JPEG_BASELINE_TS:
            continue
        span = read_span(path, _pixel_start(path), False)
        if span is None or not span.encapsulated or not span.fragments:
            continue
        with open(path, "rb") as fh:
            head = os.pread(fh.fileno(), min(span.fragments[0][1], 1 << 16), span.fragments[0][0])
        if not head.startswith(b"\xff\x4f\xff\x51"):
            continue  # a real JPEG frame
        try:
            reversible, _, mct = j2k_params(head)
        except ReencodeError as exc:
            raise WsideidError(f"--to-dicom: a converted JPEG 2000 frame cannot be read ({exc})") from None
        want = J2K_PHOTOMETRIC[(reversible, mct and int(ds.get("SamplesPerPixel", 1)) == 3)]
        if int(ds.get("SamplesPerPixel", 1)) == 1:
            want = "MONOCHROME2"
        if str(ds.get("PhotometricInterpretation", "")) != want:
            raise WsideidError(f"--to-dicom: wsidicomizer wrote JPEG 2000 frames as {ds.PhotometricInterpretation}, "
                               f"their codestream says {want}; not converted")
        _patch_syntax(path)
        fixed.append(name)
    return fixed


def check_level0(dcm_dir: str, level0: tuple[int, int] | None, title: str) -> None:
    """The converted slide's largest VOLUME must be the de-identified slide's level 0: a reader
    that picked another image of the file (tiffslide on a Ventana BIF gives the 128 x 96
    overview-sized series) made a valid DICOM series of the wrong picture; refused."""
    import os

    import pydicom
    if level0 is None:
        return
    sizes = []
    for name in sorted(os.listdir(dcm_dir)):
        ds = pydicom.dcmread(os.path.join(dcm_dir, name), stop_before_pixels=True)
        if len(ds.get("ImageType", [])) > 2 and ds.ImageType[2] == "VOLUME":
            sizes.append((int(ds.get("TotalPixelMatrixColumns", 0) or 0), int(ds.get("TotalPixelMatrixRows", 0) or 0)))
    got = max(sizes, default=(0, 0))
    if got != tuple(level0):
        raise WsideidError(f"--to-dicom: wsidicomizer made a {got[0]}x{got[1]} pyramid from the {title}, whose level 0 "
                           f"is {level0[0]}x{level0[1]}: it misreads this format; not converted")


def _pixel_start(path: str) -> int:
    import pydicom
    with open(path, "rb") as fh:
        pydicom.dcmread(fh, stop_before_pixels=True)
        return fh.tell()


def _patch_syntax(path: str) -> None:
    """The file meta's (0002,0010) value, JPEG Baseline -> JPEG 2000, in place (same length)."""
    import os
    with open(path, "r+b") as fh:
        head = os.pread(fh.fileno(), 4096, 0)
        tag = b"\x02\x00\x10\x00UI"
        at = head.find(tag, 132)
        if at < 0 or head[at + 8:at + 8 + len(JPEG_BASELINE_TS)] != JPEG_BASELINE_TS:
            raise WsideidError("--to-dicom: the converted instance's transfer syntax could not be located")
        os.pwrite(fh.fileno(), J2K_TS, at + 8)


def check_available() -> None:
    """Refuse --to-dicom up front (before any work) when wsidicomizer is missing."""
    try:
        with _pydicom_settings_kept():
            import wsidicomizer  # noqa: F401
    except ImportError:
        raise UnsupportedFormat("--to-dicom needs wsidicomizer (pip install wsidicomizer)") from None
