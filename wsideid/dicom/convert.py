"""``deid SLIDE --to-dicom``: de-identify a TIFF-family slide, then make it DICOM WSI.

Order matters: the TIFF pipeline runs first (labels and macros gone,
metadata scrubbed, verified), wsidicomizer then wraps the de-identified
tiles into DICOM without re-encoding them, with patient and specimen
identity taken from the research ID only, and finally the DICOM pipeline
runs on that folder like on any DICOM input (profile, keyed UIDs, the full
verification), so the published folder passed both.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from typing import Any

from ..errors import UnsupportedFormat, WsideidError
from .failures import third_party

TMP_PREFIX = ".wsideid-tmp-"


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


def convert_and_deidentify(input_path: str, outdir: str, options: Any):
    """Both steps under one name, chosen here from the *original* input (research ID,
    pseudonym of its content, or its checked name), never the source stem."""
    from ..naming import append_name_map, check_review_dir, name_for, review_dir
    from ..pipeline import deidentify as deidentify_tiff
    from .pipeline import deidentify as deidentify_dicom
    from .pipeline import dicom_options

    try:
        from wsidicomizer import WsiDicomizer
    except ImportError:
        raise UnsupportedFormat("--to-dicom needs wsidicomizer (pip install wsidicomizer)") from None
    if not os.path.isfile(input_path):
        raise WsideidError("input is not a file" if os.path.exists(input_path) else "input does not exist")
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")
    review = review_dir(outdir, getattr(options, "review_dir", None))
    check_review_dir(outdir, review)
    chosen = name_for(input_path, [input_path], options)
    name = chosen.stem
    if os.path.lexists(os.path.join(outdir, name)) and not options.overwrite:
        raise WsideidError(f"output already exists: {name} (use --overwrite)")
    work = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=outdir)
    try:
        inner = dataclasses.replace(chosen, record=False)  # the intermediate steps record nothing
        tiff_out = os.path.join(work, "tiff")
        os.mkdir(tiff_out)
        tiff_opts = dataclasses.replace(options, dicom=None, audit_dir=work, overwrite=False, naming=inner,
                                        review_dir=os.path.join(work, "review"))
        tiff = deidentify_tiff(input_path, tiff_out, tiff_opts)
        dcm_dir = os.path.join(work, name)
        os.mkdir(dcm_dir)
        ident = options.new_id or "DEIDENTIFIED"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                WsiDicomizer.convert(tiff.output, dcm_dir, metadata=_metadata(ident), include_label=False,
                                     include_overview=False, include_confidential=False, workers=1)
        except Exception as exc:  # noqa: BLE001 - wsidicomizer raises many types
            raise WsideidError(_conversion_failure(exc)) from None
        dicom_opts = dataclasses.replace(options, dicom=dataclasses.replace(dicom_options(options), to_dicom=False),
                                         naming=inner)
        append_name_map(review, chosen, name)  # before the DICOM step publishes
        result = deidentify_dicom(dcm_dir, outdir, dicom_opts)
        result.plan.options["converted_from"] = tiff.format
        if tiff.sha256.get("input") and tiff.hash_algorithm == result.hash_algorithm:  # --hash-input
            result.sha256["source"] = tiff.sha256["input"]
        result.input = input_path
        result.named_by = chosen.named_by.value
        from ..audit import write_audit, write_lab_record
        write_lab_record(result, options, review, chosen.origin, chosen.named_by.value)
        result.audit_path = write_audit(result, options)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)

