"""The DICOM flow for one slide: load, plan, write, verify, publish, audit.

Same contract as ``wsideid.pipeline.deidentify``: everything is written into
a temporary folder inside OUTDIR, verified, and only then renamed to its
final name; any failure removes the temporary folder and leaves nothing at
the output path. The input is only read, and checked for changes made while
it was processed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from typing import Any

from ..errors import MalformedFile, VerificationFailed, WsideidError
from ..keys import Secret, load_secret
from ..model import Plan, VerifyReport
from ..profiles import load_profile
from . import is_dicom_input
from .plan import DicomOptions, DicomPlanData, make_dicom_plan
from .rules import DicomRules
from .source import DicomSource, load, quiet_pydicom
from .uids import UidMapper

TMP_PREFIX = ".wsideid-tmp-"
# What pydicom raises on values it read leniently but cannot convert or encode.
PYDICOM_VALUE_ERRORS = (ValueError, TypeError, NotImplementedError, OverflowError, KeyError)


def dicom_options(options: Any) -> DicomOptions:
    return getattr(options, "dicom", None) or DicomOptions()


def _secret(options: Any) -> Secret:
    """The run's secret (``options.secret``), else the DICOM options' one, else random for this run."""
    s = getattr(options, "secret", None) or getattr(dicom_options(options), "secret", None)
    return s if s is not None else load_secret(None, allow_random=True)


def _columns(options: Any, profile: Any = None) -> set[str]:
    from .options import option_columns
    return option_columns(dicom_options(options).options, options, profile)


def _label(options: Any) -> str:
    """``--dicom-option generated-label`` or the general ``--label replace``."""
    if dicom_options(options).label == "generate" or getattr(options, "label", None) == "replace":
        return "generate"
    return "remove"


def plan_source(src: DicomSource, options: Any, secret: Secret | None = None) -> Plan:
    profile = load_profile("dicom", options.profile)
    rules = DicomRules(profile, _columns(options, profile))
    uids = UidMapper(secret or _secret(options))
    subject = getattr(options, "subject", None)
    patient_id = uids.pseudonym("dicom-PatientID", subject) if subject else None  # one per subject
    from .options import date_policy, note_macro_choice
    try:
        plan = make_dicom_plan(src, profile, rules, uids, date_policy(options.dates, rules), options.new_id,
                               options.strict,
                               options.keep_macro or getattr(options, "macro", None) == "keep", _label(options),
                               patient_id=patient_id)
        return note_macro_choice(plan, getattr(options, "macro", None))
    except PYDICOM_VALUE_ERRORS as exc:
        raise MalformedFile(f"an attribute value pydicom cannot read ({type(exc).__name__})") from None


def inspect(path: str | os.PathLike, options: Any) -> Plan:
    with quiet_pydicom():
        return plan_source(load(os.fspath(path)), options)


def output_name(src: DicomSource, stem: str) -> str:
    """A folder for a folder, ``<stem>.dcm`` for a single file; the stem is never the input's own name
    unless ``--keep-name`` passed it (see wsideid.naming)."""
    return stem if src.is_folder else f"{stem}.dcm"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def plan_regions(plan: Plan, options: Any) -> None:
    """Blank ``options.regions`` (level-0 pixels) in the frames they touch; refuses before anything is written."""
    from .redact import plan_frames
    plan.regions = [tuple(r) for r in getattr(options, "regions", None) or []]
    plan.inventory.container.frame_edits = plan_frames(plan, list(plan.regions), getattr(options, "fill", "white"))
    plan.inventory.container.regions = list(plan.regions)


def _frames_of(data: DicomPlanData, inst, ds) -> dict:
    """The blanked frames of an instance (the header's Extended Offset Table recomputed for them)."""
    from .redact import patch_header
    frames = data.frame_edits.of(inst.index) if data.frame_edits is not None else {}
    patch_header(ds, inst, frames)
    return frames


def write_all(plan: Plan, folder: str, single_name: str | None) -> list[tuple[Any, str, Any]]:
    """Write every kept instance into ``folder``; returns (instance, path, header) per instance."""
    from .apply import build_instance, write_instance
    from .labels import generated_label

    data: DicomPlanData = plan.inventory.container
    written = []
    by_index = {i.index: i for i in data.source.instances}
    for d in plan.images:
        if d.action == "remove":
            continue
        inst = by_index[d.image.index]
        try:
            ds = build_instance(inst, data, plan.profile_name, plan.profile_sha256)
        except PYDICOM_VALUE_ERRORS as exc:
            raise MalformedFile(f"instance {inst.index}: a value that cannot be re-encoded ({type(exc).__name__})") from None
        if d.action == "replace":
            inst, ds = generated_label(inst, ds, data, folder)
        frames = _frames_of(data, inst, ds)
        name = single_name or f"{ds.SOPInstanceUID}.dcm"
        path = os.path.join(folder, name)
        write_instance(ds, inst, path, frames)
        written.append((inst, path, ds))
    if not written:
        raise WsideidError("the plan keeps no image: nothing to write")
    if single_name and len(written) > 1:  # pragma: no cover - a file holds one instance
        raise WsideidError("one input file cannot give several outputs")
    return written


def deidentify(input_path: str | os.PathLike, outdir: str | os.PathLike, options: Any):
    """De-identify a DICOM file or folder into ``outdir`` (or convert with --to-dicom)."""
    with quiet_pydicom():
        return _deidentify(input_path, outdir, options)


def _deidentify(input_path: str | os.PathLike, outdir: str | os.PathLike, options: Any):
    from ..naming import check_name_options, check_review_dir, name_for, review_dir
    from ..pipeline import DeidResult, record_and_audit, with_secret

    check_name_options(options)
    options = with_secret(options)
    input_path, outdir = os.fspath(input_path), os.fspath(outdir)
    if dicom_options(options).to_dicom and not is_dicom_input(input_path):
        from .convert import convert_and_deidentify
        return convert_and_deidentify(input_path, outdir, options)
    t0 = time.perf_counter()
    if not os.path.exists(input_path):
        raise WsideidError("input does not exist")
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")
    review = review_dir(outdir, getattr(options, "review_dir", None))
    check_review_dir(outdir, review)
    src = load(input_path)
    name = name_for(input_path, [i.path for i in src.instances], options)
    final = os.path.join(outdir, output_name(src, name.stem))
    if os.path.exists(final) and os.path.realpath(final) == os.path.realpath(input_path):
        raise WsideidError("the output would overwrite the input (use another output folder)")
    from ..pipeline import check_free
    check_free(final, options.overwrite)
    before = {i.path: _stat(i.path) for i in src.instances}
    plan = plan_source(src, options)
    plan_regions(plan, options)
    timings = {"plan": time.perf_counter() - t0}

    from ..pipeline import clean_stale_temps, temp_name
    clean_stale_temps(outdir)
    tmp = os.path.join(outdir, temp_name())
    os.mkdir(tmp)
    try:
        inner = os.path.join(tmp, "slide")
        os.mkdir(inner)
        t1 = time.perf_counter()
        written = write_all(plan, inner, None if src.is_folder else os.path.basename(final))
        timings["write"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        from .verify import verify_dicom
        report = verify_dicom(plan, written, full=options.verify == "full",
                              identifiers=getattr(options, "identifiers", None) or [])
        timings["verify"] = time.perf_counter() - t2
        if any(_stat(p) != k for p, k in before.items()):
            raise WsideidError("the input changed while it was being processed; nothing was published")
        if not report.ok:
            fails = "; ".join(f"{c.name}: {c.detail}" for c in report.failures()[:3])
            raise VerificationFailed(f"output failed verification, nothing published ({fails})")
        scans, status = _detect(src, plan, written, options)
        if status == "flagged":
            from ..naming import make_review_dir
            make_review_dir(review, "flagged")
            final = os.path.join(review, "flagged", os.path.basename(final))
        hashes: dict[str, str] = {}
        if options.hash_outputs:
            for inst in src.instances:
                hashes[f"input[{inst.index}]"] = _sha256(inst.path)
            for inst, path, _ in written:
                hashes[f"output[{inst.index}]"] = _sha256(path)
        timings["total"] = time.perf_counter() - t0
        result = DeidResult(input_path, final, "dicom", plan, report, status, timings=timings, sha256=hashes,
                            scans=scans)
        # Mapping and audit land first, as in the TIFF pipeline: never a published
        # output the lab cannot map back or that has no record.
        from ..pseudomaps import patient_pairs, record_maps
        from ..safefs import claim
        with claim(os.path.dirname(final), os.path.basename(final)):
            check_free(final, options.overwrite)
            record_maps(review, plan.inventory.container.uids.mapped, patient_pairs(plan))  # issue 15 item 2
            result.audit_path = record_and_audit(result, options, name, review)
            result.replaced = _publish(inner if src.is_folder else written[0][1], final, tmp, options.overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def instance_image(path: str, index: int):
    """Pixels of one DICOM instance as a PIL image, for the detectors (``scanimage``)."""
    from .scanimage import instance_image as read
    return read(path, index)


def _reduced_levels(written) -> list:
    """Every kept VOLUME instance except the full-resolution one of its series: reduced
    levels are small pictures of the whole slide (a pen mark, a sticker, a scanned-in label
    corner show there), read within the detectors' pixel budget (``scanimage``). A series
    with one level size only has it scanned when it is small (``LOW_RES_LEVEL_PIXELS``)."""
    def pixels(ds) -> int:
        return (int(ds.get("TotalPixelMatrixRows", ds.get("Rows", 0)) or 0) *
                int(ds.get("TotalPixelMatrixColumns", ds.get("Columns", 0)) or 0))
    series: dict[str, list] = {}
    for inst, path, ds in written:
        if inst.role == "level":
            series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((pixels(ds), inst, path))
    from ..scanning import LOW_RES_LEVEL_PIXELS
    out = []
    for levels in series.values():
        full = max(p for p, _, _ in levels)
        reduced = [(inst, path) for p, inst, path in levels if p < full]
        if not reduced and full <= LOW_RES_LEVEL_PIXELS:  # a lone small level: the whole slide, scanned
            reduced = [(inst, path) for _, inst, path in levels]
        out += reduced
    return out


def _detect(src: DicomSource, plan: Plan, written, options: Any):
    """Detectors on the label/overview being removed (detect=all) and on every kept
    instance that is not the full-resolution level (thumbnail, reduced levels, a
    generated or kept label, overview)."""
    from ..scanning import scan_images
    mode = getattr(options, "detect", "residual")
    if mode == "off":
        return [], "published"
    ids = getattr(options, "identifiers", []) or []
    ocr = getattr(options, "ocr", True)
    scans = []
    if mode == "all":
        by_index = {i.index: i for i in src.instances}
        targets = [(d.image.role, d.image.index) for d in plan.images if d.image.role in ("label", "overview")]
        for role, idx in targets:
            scans += scan_images(by_index[idx].path, [(role, idx)], "source", ids, ocr, reader=instance_image)
    targets = [(inst, path) for inst, path, _ in written if inst.role != "level"] + _reduced_levels(written)
    for inst, path in targets:
        role = inst.role
        out = scan_images(path, [(role, inst.index)], "output", ids, ocr, reader=instance_image)
        new_id = getattr(options, "new_id", None)
        for sc in out:
            if sc.result is not None and new_id:
                sc.result.findings = [f for f in sc.result.findings if f.value.strip() != new_id]
        scans += out
    flagged = any(s.stage == "output" and (s.has_phi or s.error) for s in scans)
    return scans, "flagged" if flagged else "published"


def _publish(ready: str, final: str, tmp: str, overwrite: bool) -> bool:
    """Claim the final name atomically (see wsideid.safefs); True when --overwrite replaced an output."""
    from ..safefs import publish_dir, publish_file
    if os.path.isdir(ready):
        return publish_dir(ready, final, overwrite, os.path.join(tmp, "old"))
    return publish_file(ready, final, overwrite)


def verify_output(original: str | os.PathLike, output: str | os.PathLike, options: Any) -> VerifyReport:
    """Re-plan the original (same secret and options) and check an existing output against it."""
    with quiet_pydicom():
        return _verify_output(original, output, options)


def _verify_output(original: str | os.PathLike, output: str | os.PathLike, options: Any) -> VerifyReport:
    from .apply import build_instance
    from .source import read_instance
    from .verify import verify_dicom

    src = load(os.fspath(original))
    plan = plan_source(src, options)
    plan_regions(plan, options)
    data: DicomPlanData = plan.inventory.container
    out = os.fspath(output)
    files = [os.path.join(out, n) for n in sorted(os.listdir(out))] if os.path.isdir(out) else [out]
    by_uid = {}
    for i, f in enumerate(files):
        try:
            by_uid[str(read_instance(f, i).ds.get("SOPInstanceUID", ""))] = f
        except WsideidError:
            continue
    written = []
    rep = VerifyReport()
    for d in plan.images:
        if d.action == "remove":
            continue
        inst = next(i for i in src.instances if i.index == d.image.index)
        ds = build_instance(inst, data, plan.profile_name, plan.profile_sha256)
        _frames_of(data, inst, ds)
        path = by_uid.get(str(ds.get("SOPInstanceUID", "")))
        if path is None:
            rep.add("instances", False, f"instance {inst.index} not found in the output (other secret?)")
            return rep
        written.append((inst, path, ds))
    rep.add("instances", True, f"{len(written)} instance(s) matched by keyed SOP Instance UID")
    for c in verify_dicom(plan, written, full=True, identifiers=getattr(options, "identifiers", None) or []).checks:
        rep.checks.append(c)
    return rep
