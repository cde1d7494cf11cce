"""The runner: one slide, any format, through open, plan, write, verify, publish, audit.

The runner knows no format. The registry (``wsideid.registry``) picks the
driver that claims the input; the driver opens it, makes the plan (frozen
from then on: no later stage changes it), writes the output under a
temporary name in the output folder and verifies it with named checks.
The runner then runs the residual PHI scan and hands over to
``wsideid.publish``: hashes, review routing, records, and only then the
atomic rename to the final name, so a failed or killed run never leaves a
file at the output path. The input is opened read-only and checked for
changes made while it was being processed.

``--to-dicom`` is the runner chaining two drivers (TIFF family, then
DICOM); ``--in-place`` is the runner with the driver rewriting the input.
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import memory
from .drivers.base import Opened, Written
from .enums import DetectMode, Status, VerifyMode
from .errors import WsideidError
from .checks import VerifyReport
from .model import Plan
from .naming import check_name_options, check_review_dir, name_for, review_dir
from .options import DeidOptions, with_secret
from .publish import (TMP_PREFIX, InputGuard, check_free, check_input_and_output, check_not_input,  # noqa: F401
                      clean_stale_temps, commit, drop_research_id, failure_summary, is_flagged, record_and_audit,
                      require_ok, route, temp_name)
from .registry import open_input, refuse_special
from .result import DeidResult
from .sniff import is_dicom_input


def inspect(path: str | os.PathLike, options: DeidOptions | None = None) -> Plan:
    """The plan the profile would carry out, without writing anything."""
    options = options or DeidOptions()
    check_name_options(options)
    opened = open_input(path, options.series)
    with _session(opened):
        return opened.driver.plan(opened, options)


def output_name(input_path: str, stem: str, fmt: str) -> str:
    """The chosen name (research ID, pseudonym or checked input name) with the format's own extension."""
    from .registry import by_name
    return by_name(fmt).output_name(input_path, stem)


def deidentify(input_path: str | os.PathLike, outdir: str | os.PathLike | None,
               options: DeidOptions | None = None) -> DeidResult:
    """De-identify one slide into ``outdir``; raises WsideidError on failure (nothing published)."""
    options = options or DeidOptions()
    check_name_options(options)
    options = with_secret(options)
    memory.tune()
    input_path = os.fspath(input_path)
    if _to_dicom_asked(options):
        if not is_dicom_input(input_path):
            return _to_dicom(input_path, os.fspath(outdir or ""), options)
    if options.in_place:
        return _deidentify_in_place(input_path, options)
    from .tiff_family.inplace import journal_path
    if os.path.exists(journal_path(input_path)):
        raise WsideidError("an interrupted in-place run left a journal next to this slide; rerun with --in-place to restore it")
    if outdir is None:
        raise WsideidError("deid needs an output folder (or --in-place to rewrite the input itself)")
    outdir = os.fspath(outdir)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    check_input_and_output(input_path, outdir, is_folder_ok=os.path.isdir(input_path) and is_dicom_input(input_path))
    review = review_dir(outdir, options.review_dir)
    check_review_dir(outdir, review)
    guard = InputGuard([input_path] if os.path.isfile(input_path) else [])
    opened = open_input(input_path, options.series)
    guard.add(opened.files)
    driver = opened.driver
    name = name_for(input_path, opened.files, options)
    final = os.path.join(outdir, driver.output_name(input_path, name.stem))
    beside = driver.companion_names(name.stem)
    for out in [final] + [os.path.join(outdir, n) for n in beside]:
        check_not_input(out, input_path, opened.files)
        check_free(out, options.overwrite)
    clean_stale_temps(outdir)
    with _session(opened):
        hashing = driver.start_hashing(opened, options)
        plan = driver.plan(opened, options)
        timings["plan"] = time.perf_counter() - t0
        scans: list = []
        if options.detect == DetectMode.ALL:
            t = time.perf_counter()
            scans += _scan(driver, driver.source_images(opened, plan), "source", options)
            timings["detect-source"] = time.perf_counter() - t
        scratch = os.path.join(outdir, temp_name())
        residual = _Residual(driver, opened, plan, options) if options.detect != DetectMode.OFF else None
        try:
            t1 = time.perf_counter()
            written = driver.write(opened, plan, scratch, os.path.basename(final), options,
                                   _WriteEvents(hashing, residual))
            timings["write"] = time.perf_counter() - t1
            hashing.written(written)  # stamped (and, TIFF, hashed from disk) before verification reads it
            from .hashing import PartStamps
            stamps = PartStamps(written.ready)  # whatever the hash: the published files are the verified ones
            if residual is not None:  # the detectors' memory peak and the verifier's never add (issue 17)
                t = time.perf_counter()
                residual.wait_early()
                timings["detect-early-wait"] = time.perf_counter() - t
            memory.release()
            t2 = time.perf_counter()
            report = _verify(driver, opened, plan, written, options)
            timings["verify"] = time.perf_counter() - t2
            memory.release()
            if residual is not None:
                residual.written(written)
            guard.check()
            require_ok(report)
            status = Status.PUBLISHED
            if residual is not None:
                t = time.perf_counter()
                found = residual.result()
                timings["detect-wait"] = time.perf_counter() - t  # what the overlap did not hide
                scans += found
                timings["detect-residual"] = sum(s.result.timings_ms.get("total", 0) / 1000 for s in found if s.result)
                if is_flagged(found):
                    status = Status.FLAGGED
            destination = route(status, final, review, options.overwrite)
            hashes = hashing.result(written, report)
            require_ok(report)
            timings["total"] = time.perf_counter() - t0
            result = DeidResult(input_path, destination, driver.name, plan, report, status, timings=timings,
                                sha256=hashes, scans=scans, hash_algorithm=hashing.algorithm_name)
            before = getattr(driver, "before_records", None)
            commit(result, written.ready, options, name, review, scratch=scratch, companions=written.companions,
                   before_records=(lambda: before(plan, review)) if before is not None else None,
                   unchanged=lambda: hashing.unchanged(written) or stamps.unchanged())
        except BaseException:
            if residual is not None:
                residual.cancel()
            raise
        finally:
            _remove(scratch)
    return result


def _verify(driver, opened: Opened, plan: Plan, written: Written, options: DeidOptions) -> VerifyReport:
    """The driver's named checks over what it wrote (a seam the fault tests use)."""
    return driver.verify(opened, plan, written, options)


class _Residual:
    """The residual scan of the kept images, for every driver a thread started with the write
    (``slide_scan_thread.ResidualScan``: images the driver can name before writing are read
    from the source while it writes, the others from the output once verified; never beside
    the verification, whose memory peak would add to the detectors', issue 17).
    Joined before published/flagged is decided, so nothing is published unscanned."""

    def __init__(self, driver, opened: Opened, plan: Plan, options: DeidOptions):
        from .slide_scan_thread import ResidualScan
        self.thread = ResidualScan(driver, opened, plan, options.identifiers, options.ocr, options.new_id)
        self.thread.start()

    def go(self) -> None:
        self.thread.go()

    def written(self, written: Written) -> None:
        self.thread.written(written)

    def wait_early(self) -> None:
        self.thread.wait_early()

    def result(self) -> list:
        return self.thread.result()

    def cancel(self) -> None:
        self.thread.cancel()


class _WriteEvents:
    """What the writer is handed as ``on_recipe``: called with the recipe once its layout is fixed
    (kept by the hashing, which compares the file with it as it hashes it once written); ``checked()``, which a driver whose write runs a check beside the
    copy calls when that check is done (TIFF family: the stream rule's), starts the residual
    scan's early reads. So they run neither beside the tile-header scan before the copy (Python
    on the path every run waits for, which theirs slowed by GIL hand-offs) nor beside the stream
    check (its read buffers and the detectors' images added up to over 100 MB at 2 GB); a driver
    that never calls ``checked`` starts them when its write returns (``wait_early``)."""

    def __init__(self, hashing, residual: "_Residual | None"):
        self.hashing, self.residual = hashing, residual

    def __call__(self, recipe) -> None:
        memory.release()  # the layout's per-tile arrays (freed below the mmap threshold) go back before the copy
        self.hashing.on_recipe(recipe)

    def checked(self) -> None:
        if self.residual is not None:
            memory.release()  # the stream check's arrays, before the detectors' images
            self.residual.go()


def _scan(driver, images: list, stage: str, options: DeidOptions) -> list:
    from .slide_scan import scan_refs
    return scan_refs(images, stage, options.identifiers, options.ocr)


def _session(opened: Opened):
    import contextlib
    session = getattr(opened.driver, "session", None)
    return session() if session is not None else contextlib.nullcontext()


def _remove(path: str) -> None:
    """The run's temporary output, whatever the driver made of it (gone after a publish)."""
    import shutil
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except OSError:
        pass  # never written (read-only folder) or already renamed into place


def _to_dicom_asked(options: DeidOptions) -> bool:
    """Checked without importing pydicom (which alone costs a quarter second of every TIFF run)."""
    return options.dicom is not None and options.dicom.to_dicom


def _to_dicom(input_path: str, outdir: str, options: DeidOptions) -> DeidResult:
    """``--to-dicom``: the TIFF-family run, the conversion, the DICOM run, under one name chosen
    here from the *original* input (research ID, pseudonym of its content, or its checked name),
    never the source stem; only the last step publishes, the inner ones record nothing."""
    import dataclasses
    import shutil
    import tempfile

    from .audit import write_audit, write_lab_record
    from .dicom.convert import check_available, check_level0, dicomize, fix_j2k_syntax, supply_mpp
    from .drivers.dicom import dicom_options
    from .naming import append_name_map

    check_available()
    if not os.path.isfile(input_path):
        raise WsideidError("input is not a file" if os.path.exists(input_path) else "input does not exist")
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")
    review = review_dir(outdir, options.review_dir)
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
        tiff = deidentify(input_path, tiff_out, tiff_opts)
        if tiff.status != Status.PUBLISHED:  # a finding of the TIFF step must not vanish in the conversion
            raise WsideidError(f"the de-identified slide was {tiff.status} before conversion (a detector finding "
                               "on a kept image): run it without --to-dicom and review it; nothing converted")
        dcm_dir = os.path.join(work, name)
        os.mkdir(dcm_dir)
        supply_mpp(tiff.output or "", dicom_options(options).mpp)
        dicomize(tiff.output or "", dcm_dir, options.new_id, dicom_options(options).mpp, _title(tiff.format))
        fix_j2k_syntax(dcm_dir)
        levels = [(d.image.width, d.image.height) for d in tiff.plan.images
                  if d.image.role == "level" and d.action != "remove"]
        check_level0(dcm_dir, max(levels, default=None), _title(tiff.format))
        dicom_opts = dataclasses.replace(options, dicom=dataclasses.replace(dicom_options(options), to_dicom=False),
                                         naming=inner)
        append_name_map(review, chosen, name)  # before the DICOM step publishes
        result = deidentify(dcm_dir, outdir, dicom_opts)
        result.plan.options["converted_from"] = tiff.format
        if tiff.sha256.get("input") and tiff.hash_algorithm == result.hash_algorithm:  # --hash-input
            result.sha256["source"] = tiff.sha256["input"]
        result.input = input_path
        result.named_by = chosen.named_by.value
        write_lab_record(result, options, review, chosen.origin, chosen.named_by.value)
        result.audit_path = write_audit(result, options)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _title(fmt: str) -> str:
    """A format's title (``SVS (Aperio)``), for messages about it."""
    from .registry import by_name
    try:
        return by_name(fmt).title
    except WsideidError:
        return fmt


def _deidentify_in_place(input_path: str, options: DeidOptions) -> DeidResult:
    """``--in-place``: the driver rewrites the slide itself, crash-safely (see inplace.py)."""
    from dataclasses import replace

    from .audit import write_audit
    from .tiff_family.inplace import recover

    t0 = time.perf_counter()
    if is_dicom_input(input_path) and os.path.isdir(input_path):
        raise WsideidError("--in-place rewrites TIFF-family slides only (use -o OUTDIR for DICOM)")
    if not os.path.isfile(input_path):
        raise WsideidError("input does not exist" if not os.path.exists(input_path) else "input is not a file")
    recovered = recover(input_path)
    opened = open_input(input_path)
    driver = opened.driver
    if not driver.supports_in_place:
        raise WsideidError(f"--in-place rewrites TIFF-family slides only, not {driver.name} (use -o OUTDIR)")
    plan = driver.plan(opened, options)
    scans: list = []
    if options.detect == DetectMode.ALL:  # the removed images are wiped by the rewrite: scanned first
        scans += _scan(driver, driver.source_images(opened, plan), "source", options)
    res = driver.in_place(opened, plan, options)
    require_ok(res.report, "in-place result failed verification; the slide was put back as it was")
    status = Status.PUBLISHED
    timings = {"in-place": res.seconds}
    if options.detect != DetectMode.OFF:
        # The kept images as rewritten get the residual scan a copy gets: a finding cannot hold
        # back a file already rewritten, but the slide is reported flagged (exit code, audit, QC).
        t = time.perf_counter()
        found = _scan(driver, res.images, "output", options)
        timings["detect-residual"] = time.perf_counter() - t
        scans += found
        if is_flagged(found):
            status = Status.FLAGGED
    timings["total"] = time.perf_counter() - t0
    result = DeidResult(input_path, input_path, driver.name, plan, res.report, status, timings=timings,
                        error=recovered, scans=scans)
    audit_dir = options.audit_dir or os.path.dirname(os.path.abspath(input_path))
    result.audit_path = write_audit(result, replace(options, audit_dir=audit_dir))
    return result


def plan_summary(plan: Plan) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for d in plan.fields:
        counts[d.action] = counts.get(d.action, 0) + 1
    return {"actions": counts, "unknown": len(plan.unknowns()),
            "images": {f"{d.image.index}:{d.image.role}": d.action for d in plan.images}}


def verify_output(original: str | os.PathLike, output: str | os.PathLike, options: DeidOptions | None = None) -> VerifyReport:
    """Re-plan the original with the same options and check an existing output against it."""
    options = options or DeidOptions(verify=VerifyMode.FULL)
    check_name_options(options)
    opened = open_input(original, options.series)
    refuse_special(os.fspath(output), "the output to verify")  # a FIFO there hung the reparse check
    with _session(opened):
        return opened.driver.verify_existing(opened, os.fspath(output), options)
