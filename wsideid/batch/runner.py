"""Run a manifest on this machine (worker processes) or a Dask cluster.

The runner decides, from the review folder's records, which slides are
already done (resume), hands the rest to an executor, and writes the two
summaries: a PHI-free ``batch-summary.csv`` in OUTDIR (research IDs,
statuses, counts, timings) and a full one in the review folder (with the
source and the error message). Refused manifest rows appear in both with
the row and column that was wrong, never the offending value in OUTDIR.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

from ..cells import unescape_row
from ..errors import WsideidError
from . import records
from .job import (RECORD_NOT_WRITTEN, SUMMARY_COLUMNS, SlideJob, SourceOrigin, _ours, finished_row, interrupted_job,
                  is_done, lost_job, recover_interrupted, run_job)
from .dicom_rows import check_dicom_rows
from .manifest import ManifestRow, RowProblem, parse_manifest

CLEAN = ("published", "approved")
EXIT_CLEAN, EXIT_REVIEW, EXIT_FAILED = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


REASONS = {"interrupted": "interrupted (Ctrl-C) before it finished; rerun the same command to finish it",
           "lost": "its worker died; rerun the same command to finish it",
           RECORD_NOT_WRITTEN: "its record could not be written in the review folder; its output may be in OUTDIR:"
                               " fix that and rerun the same command"}


@dataclass
class BatchOptions:
    jobs: int = 1
    dask: str | None = None  # scheduler address: run on a Dask cluster instead of local processes
    review_dir: str | None = None
    source_root: str | None = None
    dates: str = "remove"
    secret_file: str | None = None
    detect: str = "all"
    ocr: bool = True
    verify: str = "sample"
    progress: bool = True
    overwrite: bool = False  # replace outputs of earlier runs in OUTDIR (each replacement is reported)
    to_dicom: bool = False  # every slide converted to DICOM WSI after de-identification (a folder per slide)
    reencode_j2k: bool = False  # regions on JPEG 2000 tiles/frames: re-encode the touched ones reversibly
    origin: SourceOrigin | None = None  # the sources are a temporary copy of these (a DICOMweb study)


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]
    problems: list[RowProblem]
    outdir: str
    review_dir: str
    summary_path: str
    counts: dict[str, int] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    secret_source: str = ""  # file | environment | random per run (the CLI warns about the last)
    overwrote: list[str] = field(default_factory=list)  # output names --overwrite replaced or dropped
    messages: dict[int, str] = field(default_factory=dict)  # row -> why it failed or was refused (lab side only)
    sources: dict[int, str] = field(default_factory=dict)  # row -> its source cell (PHI: lab side only)
    interrupted: bool = False  # Ctrl-C stopped the run: its unfinished rows say "interrupted"

    def unfinished(self) -> list[dict[str, Any]]:
        """The rows that failed, were lost or interrupted, with why: what the summary names, not only counts."""
        return [{"row": r["row"], "new_id": r["new_id"], "status": r["status"],
                 "reason": self.messages.get(int(r["row"])) or REASONS.get(r["status"])
                 or REASONS.get(r.get("error_kind", "")) or r.get("error_kind") or r["status"]}
                for r in self.rows if r["status"] in ("failed", "lost", "interrupted")]

    @property
    def lost(self) -> int:
        return sum(r["status"] == "lost" for r in self.rows)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.problems or any(r["status"] in ("failed", "lost") for r in self.rows):
            return EXIT_FAILED
        return EXIT_CLEAN if all(r["status"] in CLEAN for r in self.rows) else EXIT_REVIEW


def make_job(row: ManifestRow, outdir: str, review_dir: str, opts: BatchOptions) -> SlideJob:
    job = SlideJob(row=row.row, source=row.source, new_id=row.new_id, outdir=outdir, review_dir=review_dir,
                   fingerprint="", subject=row.subject, identifiers=list(row.identifiers),
                   dates=row.dates or opts.dates, secret_file=opts.secret_file, keep_macro=row.keep_macro,
                   macro=row.macro, label=row.label, regions=list(row.regions), detect=row.detect or opts.detect, ocr=opts.ocr,
                   verify=opts.verify, named_by=row.named_by, series=row.series, to_dicom=opts.to_dicom,
                   mpp=row.mpp, reencode_j2k=opts.reencode_j2k,
                   origin=opts.origin.of(row.source, row.series) if opts.origin else None)
    key = {k: getattr(job, k) for k in ("source", "new_id", "named_by", "subject", "identifiers", "dates",
                                        "keep_macro", "macro", "label", "regions", "detect", "ocr")}
    for extra in ("series", "to_dicom", "mpp", "reencode_j2k"):  # only when set: earlier fingerprints stay valid
        if getattr(job, extra):
            key[extra] = getattr(job, extra)
    job.fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]
    return job


def _prepare(job: SlideJob, prev: dict | None, overwrite: bool) -> None:
    """A slide done before with other options or input.

    Only with --overwrite is its earlier output (in this OUTDIR or review
    folder) replaced or dropped; without it the slide fails with "output
    already exists", and nothing published is touched. Files outside this
    OUTDIR and review folder are never touched.
    """
    job.overwrite = overwrite
    earlier = prev and (prev.get("output") or prev.get("previous_output"))
    if overwrite and earlier and _ours(earlier, job.outdir, job.review_dir):
        job.stale = [earlier]


def execute_local(jobs: list[SlideJob], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield run_job(job)
        return
    from .pool import run_pool
    yield from run_pool(jobs, workers, run_job, lost_job)


def _progress(total: int, enabled: bool) -> Callable[[dict], None]:
    if not enabled or total == 0:
        return lambda _row: None
    done = [0]

    def plain(row: dict) -> None:  # one line a slide: what a log file or a pipe can hold
        done[0] += 1
        print(f"[{done[0]}/{total}] {row['new_id']}: {row['status']}", file=sys.stderr)
    if not sys.stderr.isatty():  # a bar redrawn with carriage returns is noise in a log
        return plain
    try:
        from tqdm import tqdm
    except ImportError:
        return plain
    bar = tqdm(total=total, unit="slide", file=sys.stderr, dynamic_ncols=True)

    def tick(row: dict) -> None:
        bar.set_postfix_str(f"{row['new_id']}: {row['status']}", refresh=False)
        bar.update(1)
        if bar.n >= total:
            bar.close()
    return tick


def refused_rows(problems: list[RowProblem]) -> dict[int, dict[str, Any]]:
    """One summary row per refused manifest row, naming the bad columns (never their values)."""
    cols: dict[int, list[str]] = {}
    for p in problems:
        cols.setdefault(p.row, []).append(p.column)
    out = {}
    for n, names in cols.items():
        row = {c: "" for c in SUMMARY_COLUMNS}
        row.update(row=n, status="refused", run="refused", error_kind="manifest:" + "+".join(dict.fromkeys(names)),
                   new_id=next((p.new_id for p in problems if p.row == n and p.new_id), ""))
        out[n] = row
    return out


def write_csv(path: str, rows: Iterable[dict], columns: list[str]) -> None:
    """Atomically, never through a link (wsideid.safefs), every cell escaped against formulas (wsideid.cells)."""
    from ..cells import csv_text
    from ..safefs import write_atomic
    write_atomic(path, csv_text(rows, columns))


def write_summaries(result: BatchResult, sources: dict[int, str], messages: dict[int, str]) -> None:
    write_csv(result.summary_path, result.rows, SUMMARY_COLUMNS)
    full = [{**r, "source": sources.get(int(r["row"]), ""), "message": messages.get(int(r["row"]), "")}
            for r in result.rows]
    write_csv(os.path.join(result.review_dir, records.SUMMARY), full, SUMMARY_COLUMNS + ["source", "message"])


def write_mapping(review_dir: str, rows: list[ManifestRow]) -> None:
    """Source names and identifiers -> research IDs: identifying, so only in the review folder."""
    write_csv(os.path.join(review_dir, records.MAPPING),
              [{"row": r.row, "new_id": r.new_id, "named_by": r.named_by, "source": r.source_rel, "path": r.source,
                "series_uid": r.series or "", "subject": r.subject or "", "identifiers": ";".join(r.identifiers)}
               for r in rows],
              ["row", "new_id", "named_by", "source", "path", "series_uid", "subject", "identifiers"])


def _earlier_pseudonyms(review_dir: str) -> dict[tuple[str, str], str]:
    """(source path, series) -> the pseudonym an earlier run of this batch gave it (from the review folder's mapping)."""
    try:
        with open(os.path.join(review_dir, records.MAPPING), newline="") as fh:
            return {(r["path"], r.get("series_uid") or ""): r["new_id"] for r in map(unescape_row, csv.DictReader(fh))
                    if r.get("named_by") == "pseudonym" and r.get("path") and r.get("new_id")}
    except (OSError, KeyError, csv.Error):
        return {}


def assign_pseudonyms(rows: list[ManifestRow], review_dir: str, secret, problems: list[RowProblem]
                      ) -> list[ManifestRow]:
    """Give each row without a new_id its pseudonym (see wsideid.naming); never the source's name.

    With a secret the pseudonym is the same in every run. Without one the
    key is random, so a rerun into the same review folder reuses the
    pseudonym recorded there, and resume still finds the finished slides.
    Two rows with the same content would get the same name: the later one
    is refused.
    """
    from ..keys import RANDOM_SOURCE
    from ..naming import NamedBy, fingerprint, pseudonym
    from .dicom_rows import slide_content
    earlier = _earlier_pseudonyms(review_dir) if secret.source == RANDOM_SOURCE else {}
    taken = {r.new_id.lower(): r.row for r in rows if r.new_id}
    kept = []
    for r in rows:
        if not r.new_id:
            try:
                r.new_id = (earlier.get((r.source, r.series or ""))
                            or pseudonym(secret, fingerprint(slide_content(r))))
            except WsideidError:
                problems.append(RowProblem(r.row, "source", "cannot be read to name it", r.source_rel))
                continue
            r.named_by = NamedBy.PSEUDONYM.value
            if r.new_id.lower() in taken:
                problems.append(RowProblem(r.row, "source", f"same slide content as row {taken[r.new_id.lower()]}",
                                           r.source_rel))
                continue
            taken[r.new_id.lower()] = r.row
        kept.append(r)
    return kept


def refuse_options(rows: list[ManifestRow], problems: list[RowProblem], opts: BatchOptions) -> list[ManifestRow]:
    """Rows asking for what this run does not do are refused, not run without it: an ``mpp``
    without ``--to-dicom`` (nothing would use it), a DICOM input with ``--to-dicom`` (it is DICOM)."""
    from ..sniff import is_dicom_input
    kept = []
    for r in rows:
        if r.mpp is not None and not opts.to_dicom:
            problems.append(RowProblem(r.row, "mpp", "is used by `wsideid run --to-dicom` only", r.source_rel))
        elif opts.to_dicom and is_dicom_input(r.source):
            problems.append(RowProblem(r.row, "source", "is DICOM already: --to-dicom converts SVS/NDPI/TIFF slides",
                                       r.source_rel))
        else:
            kept.append(r)
    return kept


def refuse_collisions(rows: list[ManifestRow], problems: list[RowProblem], to_dicom: bool = False) -> list[ManifestRow]:
    """Refuse a row whose output could take the name of an earlier row's output or audit, compared
    after the extension or folder form is applied and ignoring case (``R-4.svs`` as a DICOM
    folder and ``R-4`` as an Aperio slide both make ``R-4.svs``)."""
    from ..registry import possible_outputs
    owner: dict[str, int] = {}
    kept = []
    for r in rows:
        names = possible_outputs(r.source, r.new_id, to_dicom)
        clash = sorted({owner[n] for n in names if n in owner})
        if clash:
            problems.append(RowProblem(r.row, "new_id", f"its output name may collide with row {clash[0]}'s"
                                                        " (names are compared with extensions, ignoring case)",
                                           r.source_rel))
            continue
        owner.update({n: r.row for n in names})
        kept.append(r)
    return kept


def run_batch(manifest: str, outdir: str, opts: BatchOptions | None = None) -> BatchResult:
    """Run every valid row of ``manifest`` into ``outdir``; see the module docstring for what goes where."""
    opts = opts or BatchOptions()
    outdir = os.path.abspath(outdir)
    review = os.path.abspath(opts.review_dir) if opts.review_dir else outdir.rstrip(os.sep) + "-review"
    rows, problems = parse_manifest(manifest, opts.source_root)
    parsed = list(rows)  # their new_id (a pseudonym once given) names a row refused later
    rows = check_dicom_rows(rows, problems)
    rows = refuse_options(rows, problems, opts)
    from ..keys import RANDOM_SOURCE, load_secret
    secret = load_secret(opts.secret_file, allow_random=True)
    if secret.source == RANDOM_SOURCE and any((r.dates or opts.dates) == "shift" for r in rows):
        raise WsideidError("dates=shift needs a secret (--secret-file or $WSIDEID_SECRET)")
    records.check_separate(outdir, review)
    from ..safefs import make_folders
    make_folders((outdir, 0o777, "output folder"), (review, 0o700, "review folder"))  # review: PHI, owner only
    records.link_batch(outdir, review, manifest)
    from ..safefs import remove_dead_claims
    remove_dead_claims(outdir)  # left by a run killed between a publish and the claim's release
    rows = assign_pseudonyms(rows, review, secret, problems)
    rows = refuse_collisions(rows, problems, opts.to_dicom)
    write_mapping(review, rows)

    todo, done_rows = [], {}
    for r in rows:
        job = make_job(r, outdir, review, opts)
        prev = records.load_record(review, r.new_id)
        if is_done(job, prev):
            done_rows[r.row] = {**prev["summary"], "status": prev["status"], "run": "skipped"}
        elif (recovered := recover_interrupted(job, prev)) is not None:
            done_rows[r.row] = recovered
        else:
            _prepare(job, prev, opts.overwrite)
            todo.append(job)
    tick = _progress(len(todo), opts.progress)
    fresh: dict[int, dict] = {}
    if opts.dask:
        from .dask import execute_dask
        stream = execute_dask(todo, opts.dask)
    else:
        stream = execute_local(todo, opts.jobs)
    interrupted = False
    try:
        for row in stream:
            fresh[int(row["row"])] = row
            tick(row)
    except KeyboardInterrupt:  # Ctrl-C: the workers stopped; what was not finished is recorded as such
        interrupted = True
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        for job in todo:  # a worker stopped between its publish and its report: proven from the disk
            if job.row not in fresh:
                fresh[job.row] = finished_row(job, records.load_record(review, job.new_id)) or interrupted_job(job)
    ids = {r.row: r.new_id for r in parsed}
    problems[:] = [p if p.new_id else replace(p, new_id=ids.get(p.row, "")) for p in problems]
    by_row = {**done_rows, **fresh, **refused_rows(problems)}
    ordered = [by_row[k] for k in sorted(by_row)]
    messages = {p.row: "; ".join(str(q) for q in problems if q.row == p.row) for p in problems}
    for rec in records.all_records(review):
        if rec.get("error") and rec.get("row") in fresh and fresh[rec["row"]]["status"] != "interrupted":
            messages[rec["row"]] = rec["error"]
    messages.update({n: r.pop("message") for n, r in fresh.items() if r.get("message")})  # no record said why
    result = BatchResult(ordered, problems, outdir, review, os.path.join(outdir, records.SUMMARY),
                         ran=sum(r["status"] != "interrupted" for r in fresh.values()), skipped=len(done_rows),
                         secret_source=secret.source, messages=messages, interrupted=interrupted)
    for r in ordered:
        result.counts[r["status"]] = result.counts.get(r["status"], 0) + 1
        if r.get("overwrote"):
            result.overwrote += [n for n in str(r["overwrote"]).split(";") if n]
    result.sources = {**{p.row: p.source for p in problems}, **{r.row: r.source_rel for r in rows}}
    write_summaries(result, result.sources, messages)
    return result
