"""One slide of a batch: de-identify, keep the evidence for review, report.

``run_job`` is the unit shipped to worker processes and Dask workers, so it
takes one picklable ``SlideJob`` and returns a plain dict, and never raises:
a corrupt slide or a bug fails its own slide, never the batch. What it
returns is the PHI-free summary row for OUTDIR; what identifies (source,
identifiers, detector values, label images, the full error) goes into the
slide's record in the review folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..checks import CheckStatus
from ..errors import WsideidError
from .records import input_state, load_record, record_path, tree_sha256, write_json
from .recovery import mark_running, recover

SUMMARY_COLUMNS = [
    "row", "new_id", "status", "run", "format", "output", "fields", "removed", "replaced", "kept", "unknown_removed",
    "images_removed", "phi_source", "phi_output", "phi_categories", "barcodes", "text_lines", "checks",
    "error_kind", "reviewed", "overwrote", "t_plan", "t_write", "t_verify", "t_detect", "t_total",
]


@dataclass
class SlideJob:
    """Everything one worker needs; plain values only (it crosses process and host boundaries)."""

    row: int
    source: str
    new_id: str
    outdir: str
    review_dir: str
    fingerprint: str
    subject: str | None = None
    identifiers: list[str] = field(default_factory=list)
    dates: str = "remove"
    secret_file: str | None = None
    keep_macro: bool = False
    macro: str | None = None
    label: str | None = None
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    detect: str = "all"
    ocr: bool = True
    verify: str = "sample"
    overwrite: bool = False  # only when the review record says this run's batch made the old output
    stale: list[str] = field(default_factory=list)  # earlier outputs of this slide to drop if not re-made
    named_by: str = "research-id"  # "pseudonym": new_id was given by the runner, not the manifest
    series: str | None = None  # one slide of a DICOM folder holding several (its pyramid's Series Instance UID)
    to_dicom: bool = False  # convert the de-identified slide to DICOM WSI (``wsideid run --to-dicom``)
    mpp: float | None = None  # --to-dicom: level-0 microns per pixel (the manifest's mpp column)
    reencode_j2k: bool = False  # blank JPEG 2000 tiles/frames by re-encoding the touched ones reversibly
    origin: str | None = None  # what the lab record names as the slide's origin when the source is a temporary copy


@dataclass(frozen=True)
class SourceOrigin:
    """Where a batch's sources really come from, when they are a temporary copy: a DICOMweb
    study fetched into a folder that is gone after the run. The lab record must name the
    study on its server (and the slide's series), not a temporary path nobody can find again."""

    root: str  # the temporary folder the sources are in
    shown_as: str  # what the lab record names instead ("host:port/dicom-web/studies/UID")

    def of(self, source: str, series: str | None) -> str | None:
        real, root = os.path.abspath(source), os.path.abspath(self.root)
        if real != root and not real.startswith(root + os.sep):
            return None
        return self.shown_as + (f"/series/{series}" if series else "")


def deid_options(job: SlideJob):
    """A pseudonym row names its output by the pseudonym only: it is not a research ID, so it
    does not replace identifiers in the metadata (as the manifest's new_id does)."""
    from ..dates import make_policy
    from ..keys import load_secret
    from ..naming import NamedBy, OutputName
    from ..pipeline import DeidOptions
    secret = load_secret(job.secret_file, allow_random=True)
    dicom = None
    if job.to_dicom:
        from ..dicom.plan import DicomOptions
        dicom = DicomOptions(to_dicom=True, secret=secret, mpp=job.mpp)
    pseudonymous = job.named_by == NamedBy.PSEUDONYM.value
    naming = OutputName(job.new_id, NamedBy(job.named_by), job.origin or os.path.abspath(job.source)) \
        if pseudonymous or job.origin else None
    return DeidOptions(dates=make_policy(job.dates, secret, job.subject), new_id=None if pseudonymous else job.new_id,
                       keep_macro=job.keep_macro, macro=job.macro, label=job.label,
                       regions=list(job.regions), detect=job.detect,
                       ocr=job.ocr, identifiers=list(job.identifiers), review_dir=job.review_dir,
                       overwrite=job.overwrite, verify=job.verify, secret=secret, naming=naming,
                       subject=job.subject, series=job.series, dicom=dicom, reencode_j2k=job.reencode_j2k)


def _counts(result) -> dict[str, Any]:
    plan = result.plan
    acts: dict[str, int] = {}
    for d in plan.fields:
        acts[d.action] = acts.get(d.action, 0) + 1
    cats: dict[str, int] = {}
    phi = {"source": 0, "output": 0}
    barcodes = lines = 0
    for sc in result.scans:
        if sc.result is None:
            continue
        for f in sc.result.findings:
            barcodes += f.kind == "barcode"
            lines += f.kind == "text"
            if f.is_phi:
                phi[sc.stage] = phi.get(sc.stage, 0) + 1
                for fl in f.flags:
                    cats[fl.category] = cats.get(fl.category, 0) + 1
    checks = result.report.checks if result.report else []
    return {
        "fields": len(plan.fields), "removed": acts.get("remove", 0), "kept": acts.get("keep", 0),
        "replaced": len(plan.fields) - acts.get("remove", 0) - acts.get("keep", 0),
        "unknown_removed": len(plan.unknowns()),
        "images_removed": sum(d.action == "remove" for d in plan.images),
        "phi_source": phi["source"], "phi_output": phi["output"],
        "phi_categories": ";".join(f"{k}:{v}" for k, v in sorted(cats.items())),
        "barcodes": barcodes, "text_lines": lines, "checks": f"{sum(c.passed for c in checks)}/{sum(c.status is not CheckStatus.NOT_APPLICABLE for c in checks)}",
    }


def _drop_stale(job: SlideJob, keep: str | None) -> list[str]:
    """With --overwrite only (``job.stale`` is empty otherwise): drop this slide's earlier output
    in this OUTDIR or review folder that the new run did not replace; returns the names dropped."""
    from ..safefs import remove_tree
    dropped = []
    for path in job.stale:
        if keep and os.path.abspath(path) == os.path.abspath(keep):
            continue
        if os.path.lexists(path):
            dropped.append(os.path.basename(path))
        companion = [os.path.splitext(path)[0]] if path.lower().endswith(".mrxs") else []  # MIRAX folder
        for p in [path, path + ".audit.json"] + companion:
            remove_tree(p)
    return dropped


def _ours(path: str | None, outdir: str, review_dir: str) -> bool:
    """Is ``path`` in this OUTDIR (published, approved) or this review folder (flagged, rejected)?

    A record of the review folder may name an output in another OUTDIR (a
    rerun with a new -o and the old --review-dir): that one is neither done
    here nor this run's to replace.
    """
    if not path:
        return False
    folder = os.path.dirname(os.path.abspath(path))
    return folder in (outdir, os.path.join(review_dir, "flagged"), os.path.join(review_dir, "rejected"))


def is_done(job: SlideJob, prev: dict | None) -> bool:
    """Resume: same options, unchanged input, and the output still there, in this OUTDIR (or this
    review folder), with its recorded hash. The records alone prove nothing: the disk decides."""
    if not prev or prev.get("status") not in ("published", "flagged", "approved", "rejected"):
        return False
    if prev.get("fingerprint") != job.fingerprint or prev.get("input") != input_state(job.source):
        return False
    out = prev.get("output")
    if not _ours(out, job.outdir, job.review_dir) or os.path.islink(out):
        return False
    return bool(os.path.exists(out) and tree_sha256(out, prev.get("output_hash_algorithm") or "sha256")
                == prev.get("output_sha256"))


def recover_interrupted(job: SlideJob, prev: dict | None) -> dict[str, Any] | None:
    """A slide killed between its publish and its record: finished from the disk (wsideid.batch.recovery)."""
    return recover(job, prev, lambda p: _ours(p, job.outdir, job.review_dir), SUMMARY_COLUMNS)


def finished_row(job: SlideJob, prev: dict | None) -> dict[str, Any] | None:
    """The summary row of a job already finished (its record and output prove it, or its lab
    record does after an interruption between publish and record), else None: it must be run."""
    if is_done(job, prev):
        return {**prev["summary"], "status": prev["status"]}  # type: ignore[index]
    return recover_interrupted(job, prev)


RECORD_NOT_WRITTEN = "RecordNotWritten"


def run_job(job: SlideJob) -> dict[str, Any]:
    """De-identify one slide; returns its OUTDIR summary row. Never raises: a review folder that
    cannot take the slide's record (full, gone) fails that row, not the batch or its worker."""
    try:
        return _run_job(job)
    except (OSError, WsideidError) as exc:
        detail = str(exc).splitlines()[0] if isinstance(exc, WsideidError) else \
            f"{exc.filename or ''}: {exc.strerror or type(exc).__name__}".lstrip(": ")
        row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
        row.update(row=job.row, new_id=job.new_id, status="failed", run="done", error_kind=RECORD_NOT_WRITTEN,
                   message=f"its record could not be written in the review folder ({detail}); its output may be"
                           " in OUTDIR: fix that and rerun the same command")  # lab side only: not a summary column
        return row


def _run_job(job: SlideJob) -> dict[str, Any]:
    from ..pipeline import deidentify
    prev = load_record(job.review_dir, job.new_id)
    settled = finished_row(job, prev)  # a cluster re-running a task whose result it lost (its worker died)
    if settled is not None:
        return settled
    mark_running(job, prev)
    t0 = time.perf_counter()
    state = input_state(job.source)
    result, error, kind = None, None, ""
    try:
        result = deidentify(job.source, job.outdir, deid_options(job))
    except WsideidError as exc:
        error, kind = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one slide's bug must not stop the batch
        error, kind = f"internal error ({type(exc).__name__})", "InternalError"
    status = result.status if result else "failed"
    output = result.output if result else None
    overwrote = _drop_stale(job, output) if result is not None else []
    if result is not None and result.replaced:
        overwrote.insert(0, os.path.basename(output or ""))
    row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
    row.update(row=job.row, new_id=job.new_id, status=status, run="done", error_kind=kind,
               overwrote=";".join(overwrote))
    if result is not None:
        row.update(_counts(result), format=result.format, output=os.path.basename(output or ""))
        for k in ("plan", "write", "verify", "total"):
            row[f"t_{k}"] = round(result.timings.get(k, 0.0), 3)
        row["t_detect"] = round(sum(v for k, v in result.timings.items() if k.startswith("detect")), 3)
    else:
        row["t_total"] = round(time.perf_counter() - t0, 3)
    prev = load_record(job.review_dir, job.new_id) or {} if result is None else {}
    record = {
        "previous_output": prev.get("output") or prev.get("previous_output"),  # a failed retry keeps track
        "row": job.row, "new_id": job.new_id, "named_by": job.named_by, "status": status, "source": job.source,
        "origin": job.origin,  # where a temporary source came from (a DICOMweb study and series), else None
        "identifiers": job.identifiers, "subject": job.subject, "series_uid": job.series, "fingerprint": job.fingerprint,
        "input": state, "error": error, "output": output,
        "output_sha256": (result.sha256.get("output") if result and result.sha256.get("output")
                          else tree_sha256(output) if output else None),
        "output_hash_algorithm": (result.hash_algorithm if result and result.sha256.get("output") else "sha256"),
        "audit": result.audit_path if result else None,
        "job": asdict(job), "summary": row, "images": [],
        "scans": [sc.to_dict(include_values=True) for sc in result.scans] if result else [],
        "fields": [{"path": d.field.path, "action": d.action, "rule": d.rule, "unknown": d.unknown}
                   for d in result.plan.fields] if result and result.plan else [],
        "image_actions": [{"index": d.image.index, "role": d.image.role, "action": d.action, "rule": d.rule}
                          for d in result.plan.images] if result and result.plan else [],
        "checks": result.report.to_records()
        if result and result.report else [],
        "notes": list(result.plan.inventory.notes) if result and result.plan else [],  # e.g. instances not written
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # The record lands right after the publish, before the slow review previews: a worker killed
    # in between leaves a slide its record proves (a rerun skips it), not one it must refuse.
    write_json(record_path(job.review_dir, job.new_id), record, root=job.review_dir)
    try:
        from ..report.previews import save_review_images
        record["images"] = save_review_images(job.new_id, job.source, job.review_dir, result)
    except Exception:  # noqa: BLE001
        pass
    write_json(record_path(job.review_dir, job.new_id), record, root=job.review_dir)
    return row


def lost_job(job: SlideJob, why: Any) -> dict[str, Any]:
    """The summary row of a job whose worker died before it could report: status "lost" (not
    "failed", not "refused": nothing was wrong with the slide or its row; a rerun finishes it)."""
    row = {c: "" for c in SUMMARY_COLUMNS}
    why = why if isinstance(why, str) else type(why).__name__
    row.update(row=job.row, new_id=job.new_id, status="lost", run="lost", error_kind=f"WorkerLost:{why}")
    return row


def interrupted_job(job: SlideJob) -> dict[str, Any]:
    """The summary row of a job Ctrl-C stopped (or never started) before it reported: its temp files
    are gone; a rerun skips it if it did publish (its running mark and lab record prove it,
    wsideid.batch.recovery), else redoes it."""
    row = {c: "" for c in SUMMARY_COLUMNS}
    row.update(row=job.row, new_id=job.new_id, status="interrupted", run="interrupted", error_kind="Interrupted")
    return row
