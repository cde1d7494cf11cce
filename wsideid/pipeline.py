"""The flow for one slide: open, inventory, plan, apply, verify, publish, audit.

No stage reaches back into an earlier one. The output is written under a
temporary name in the output folder, verified, and only then renamed to its
final name (an atomic rename on the same file system), so a failed or
killed run never leaves a file at the output path. The input is opened
read-only and checked for changes made while it was being processed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dates import DatePolicy
from .detect_format import OpenedSlide, open_slide
from .errors import VerificationFailed, WsideidError
from .keys import Secret
from .model import Plan, VerifyReport
from .naming import OutputName, check_name_options, check_review_dir, name_for, review_dir
from .profiles import PlanOptions, load_profile, make_plan
from .safefs import LinkRefused, NameTaken, claim, publish_file

TMP_PREFIX = ".wsideid-tmp-"


@dataclass
class DeidOptions:
    dates: DatePolicy = field(default_factory=DatePolicy)
    profile: str | None = None
    new_id: str | None = None
    strict: bool = False
    keep_macro: bool = False
    verify: str = "sample"  # sample | full
    overwrite: bool = False
    hash_outputs: bool = True
    audit_dir: str | None = None  # default: next to the output
    dicom: Any = None  # wsideid.dicom.plan.DicomOptions (DICOM input or --to-dicom)
    detect: str = "residual"  # off | residual (kept images) | all (also the removed label/macro)
    ocr: bool = True
    identifiers: list[str] = field(default_factory=list)  # known originals, matched fuzzily by the detectors
    review_dir: str | None = None  # flagged outputs go here; default: sibling "<OUTDIR>-review"
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)  # level-0 X,Y,W,H to blank
    fill: str = "white"
    macro: str | None = None  # remove | keep | blank-label (None: the profile decides)
    in_place: bool = False  # rewrite the input itself (explicit only; see inplace.py)
    label: str | None = None  # remove | replace (a generated label with the research ID); None: profile
    keep_name: bool = False  # name the output after the input, if the PHI text classifier passes that name
    secret: Secret | None = None  # keyed pseudonyms, UIDs, audit key hashes; None: random per run (warned)
    naming: OutputName | None = None  # a name already chosen by the caller (--to-dicom's inner steps, batch)


@dataclass
class DeidResult:
    input: str
    output: str | None
    format: str
    plan: Plan | None
    report: VerifyReport | None
    status: str  # published | flagged | failed
    error: str | None = None
    scans: list = field(default_factory=list)  # scanning.ImageScan, source and residual
    audit_path: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # input hashes go to the lab record only
    named_by: str | None = None  # research-id | pseudonym | kept-name
    replaced: bool = False  # --overwrite replaced an existing output of the same name (callers say so)


def inspect(path: str | os.PathLike, options: DeidOptions | None = None) -> Plan:
    """The plan the profile would carry out, without writing anything."""
    options = options or DeidOptions()
    check_name_options(options)
    if _wants_dicom(path, None):
        from .dicom import pipeline as dicom_pipeline
        return dicom_pipeline.inspect(path, options)
    from .mrxs.slide import claims as is_mirax
    if is_mirax(os.fspath(path)):
        from .mrxs.driver import inspect as inspect_mirax
        return inspect_mirax(os.fspath(path), with_secret(options))
    slide = open_slide(path)
    return _plan(slide, options)


def _plan(slide: OpenedSlide, options: DeidOptions) -> Plan:
    inv = slide.module.inventory(slide.container)
    profile = load_profile(slide.format, options.profile)
    if options.label == "replace" and not options.new_id:
        raise WsideidError("--label replace needs --new-id (the research ID the new label shows)")
    plan = make_plan(inv, profile, PlanOptions(options.dates, options.new_id, options.strict, options.keep_macro,
                                               label=options.label))
    if options.macro:
        for d in plan.images:
            if d.image.role in ("macro", "overview"):
                d.action, d.rule = options.macro, f"--macro {options.macro}"
    plan.regions = [tuple(r) for r in options.regions]
    slide.module.refine(plan)
    return plan


def _wants_dicom(path, options: DeidOptions | None) -> bool:
    """DICOM input, or conversion asked for; checked without importing pydicom
    (which alone costs a quarter second of every TIFF run)."""
    from .dicom import is_dicom_input
    return is_dicom_input(path) or bool(getattr(getattr(options, "dicom", None), "to_dicom", False))


FORMAT_EXTENSIONS = {"aperio": ".svs", "hamamatsu": ".ndpi", "generic-tiff": ".tiff"}


def output_name(input_path: str, stem: str, fmt: str | None = None) -> str:
    """The chosen name (research ID, pseudonym or checked input name) with the format's own extension.

    The extension comes from the detected format, not the input's name: a
    name like ``DOE.JANE`` must not leave ``R-1.jane`` behind.
    """
    ext = Path(input_path.rstrip(os.sep)).suffix.lower()
    if fmt == "generic-tiff" and ext in (".tif", ".tiff"):
        return stem + ext
    return stem + FORMAT_EXTENSIONS.get(fmt or "", ext if ext in (".svs", ".ndpi", ".tif", ".tiff") else "")


def with_secret(options: DeidOptions) -> DeidOptions:
    """Options carrying the run's secret: the one given (here or in the DICOM options), else a
    random one (warned about once)."""
    if options.secret is not None:
        return options
    from dataclasses import replace
    given = getattr(options.dicom, "secret", None)
    if given is not None:
        return replace(options, secret=given)
    from .keys import run_secret
    return replace(options, secret=run_secret(None, once=True))


def record_and_audit(result: DeidResult, options: DeidOptions, name: OutputName, review: str) -> str:
    """Before the output is renamed into place: the name-map.csv row, the audit, the lab record.

    Mapping first, so there is never a published output whose name the lab
    cannot map back (a failure after it leaves a row for an output that does
    not exist, which is harmless); the audit lands before the slide, so
    there is never a slide without its record. Returns the audit's path.
    """
    from .audit import write_audit, write_lab_record
    from .naming import append_name_map
    result.named_by = name.named_by.value
    if name.record:
        append_name_map(review, name, os.path.basename(result.output or ""))
    audit = write_audit(result, options if result.status == "published" else _review_audit(options, result.output))
    if name.record:
        write_lab_record(result, options, review, name.origin, name.named_by.value)
    return audit


def _stat_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class _Hasher(threading.Thread):
    """sha256 in a thread (hashlib releases the GIL on big updates).

    Hashes a whole file, or, given a recipe, the output as it is being
    written: new metadata, then the source ranges in output order, then new
    bytes. That runs beside the kernel's copy instead of after it, on the
    other core; verification compares the written tiles with the source, and
    ``--verify full`` re-hashes the file itself.
    """

    def __init__(self, path: str, recipe=None):
        super().__init__(daemon=True)
        self.path = path
        self.recipe = recipe
        self.hexdigest: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb", buffering=0) as fh:
                if self.recipe is not None:
                    self.recipe.feed(fh.fileno(), h.update)  # edited tiles streamed from their pieces
                else:
                    buf = bytearray(4 << 20)
                    view = memoryview(buf)
                    while True:
                        n = fh.readinto(buf)
                        if not n:
                            break
                        h.update(view[:n])
            self.hexdigest = h.hexdigest()
        except OSError as exc:
            self.error = exc.strerror or "read error"
        except WsideidError as exc:
            self.error = str(exc)


def deidentify(input_path: str | os.PathLike, outdir: str | os.PathLike, options: DeidOptions | None = None) -> DeidResult:
    """De-identify one slide into ``outdir``; raises WsideidError on failure (nothing published)."""
    options = options or DeidOptions()
    check_name_options(options)
    options = with_secret(options)
    if _wants_dicom(input_path, options):
        from .dicom import pipeline as dicom_pipeline
        return dicom_pipeline.deidentify(input_path, outdir, options)
    input_path = os.fspath(input_path)
    from .mrxs.slide import claims as is_mirax
    if is_mirax(input_path):
        from .mrxs.driver import deidentify as deidentify_mirax
        return deidentify_mirax(input_path, os.fspath(outdir), options)
    if options.in_place:
        return _deidentify_in_place(input_path, options)
    from .inplace import journal_path
    if os.path.exists(journal_path(input_path)):
        raise WsideidError("an interrupted in-place run left a journal next to this slide; rerun with --in-place to finish it")
    outdir = os.fspath(outdir)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if not os.path.isfile(input_path):
        raise WsideidError("input is not a file" if os.path.exists(input_path) else "input does not exist")
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")
    review = review_dir(outdir, options.review_dir)
    check_review_dir(outdir, review)
    before = _stat_key(input_path)
    slide = open_slide(input_path)
    name = name_for(input_path, [input_path], options)
    final = os.path.join(outdir, output_name(input_path, name.stem, slide.format))
    if os.path.exists(final) and os.path.samefile(final, input_path):
        raise WsideidError("the output would overwrite the input (use another output folder)")
    check_free(final, options.overwrite)
    clean_stale_temps(outdir)
    in_hash = _Hasher(input_path) if options.hash_outputs else None
    if in_hash:
        in_hash.start()
    plan = _plan(slide, options)
    timings["plan"] = time.perf_counter() - t0
    scans = []
    if options.detect == "all":
        from .scanning import scan_images, source_targets
        t = time.perf_counter()
        scans += scan_images(input_path, source_targets(plan), "source", options.identifiers, options.ocr)
        timings["detect-source"] = time.perf_counter() - t

    tmp = os.path.join(outdir, temp_name())
    published = False
    try:
        t1 = time.perf_counter()
        out_hash: _Hasher | None = None

        def start_output_hash(recipe) -> None:
            nonlocal out_hash
            if options.hash_outputs:
                out_hash = _Hasher(input_path, recipe)
                out_hash.start()
        edited = _apply(slide, plan, tmp, options, start_output_hash)
        timings["write"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        report = _verify(slide, tmp, plan, edited, options)
        timings["verify"] = time.perf_counter() - t2
        if _stat_key(input_path) != before:
            raise WsideidError("the input changed while it was being processed; nothing was published")
        if not report.ok:
            raise VerificationFailed(f"output failed verification, nothing published ({failure_summary(report)})")
        status, destination = "published", final
        if options.detect != "off":
            residual = _residual_scan(tmp, plan, options)
            scans += residual
            timings["detect-residual"] = sum(s.result.timings_ms.get("total", 0) / 1000 for s in residual if s.result)
            if any(s.has_phi or s.error for s in residual):
                status = "flagged"
                from .naming import make_review_dir
                make_review_dir(review, "flagged")
                destination = os.path.join(review, "flagged", os.path.basename(final))
        hashes: dict[str, str] = {}
        for label, h in (("input", in_hash), ("output", out_hash)):
            if h is not None:
                h.join()
                if h.error:
                    raise WsideidError(f"cannot hash the {label}: {h.error}")
                hashes[label] = h.hexdigest or ""
        if out_hash is not None and options.verify == "full":
            check = _Hasher(tmp)
            check.run()
            report.add("output-sha256", check.hexdigest == hashes["output"],
                       "the file on disk hashes to the recorded sha256")
            if not report.ok:
                raise VerificationFailed(f"output failed verification, nothing published ({failure_summary(report)})")
        if status == "flagged" and os.path.lexists(destination) and not options.overwrite:
            raise WsideidError("a flagged output of this slide is already waiting in the review folder")
        timings["total"] = time.perf_counter() - t0
        result = DeidResult(input_path, destination, slide.format, plan, report, status, timings=timings,
                            sha256=hashes, scans=scans)
        # The name is claimed first (a second publisher fails here, before it writes
        # anything), then the records land: a kill between them and the rename leaves
        # an audit without its slide (a rerun redoes it), never a slide without its record.
        with claim(os.path.dirname(destination), os.path.basename(destination)):
            check_free(destination, options.overwrite)
            result.audit_path = record_and_audit(result, options, name, review)
            result.replaced = publish_file(tmp, destination, options.overwrite)
        published = True
    finally:
        if not published:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # never written (read-only folder) or already gone: the real error is on its way
    return result


def check_free(final: str, overwrite: bool) -> None:
    """Refuse an output name that is taken (also in another letter case), or is a link.

    The early, friendly check; the exclusive claim at publish time is what
    makes it hold against a concurrent run.
    """
    folder, base = os.path.split(final)
    if os.path.islink(final):
        raise LinkRefused(f"refusing to publish over a symbolic link: {base}")
    try:
        clash = [n for n in os.listdir(folder) if n.lower() == base.lower() and n != base]
    except OSError:
        clash = []
    if clash:
        raise NameTaken(f"output name {base} collides with {clash[0]} (names are compared ignoring case)")
    if os.path.lexists(final) and not overwrite:
        raise NameTaken(f"output already exists: {base} (use --overwrite)")


def failure_summary(report: VerifyReport, limit: int = 3) -> str:
    """The first failed checks, on one line; details may quote file-made paths, so
    whitespace is collapsed and the text is capped."""
    text = "; ".join(f"{c.name}: {' '.join(str(c.detail).split())}" for c in report.failures()[:limit])
    return text[:400]


def temp_name() -> str:
    """A temp name in OUTDIR that says which host and process own it."""
    import socket
    return f"{TMP_PREFIX}{secrets.token_hex(6)}@{socket.gethostname()}@{os.getpid()}"


def clean_stale_temps(outdir: str, max_age_s: float = 6 * 3600) -> None:
    """Remove temp files a killed run left in OUTDIR.

    Only when the owning process is gone from *this* host (OUTDIR may be
    shared storage written by Dask workers elsewhere), or when it is old.
    """
    import shutil
    import socket
    now = time.time()
    host = socket.gethostname()
    try:
        names = [n for n in os.listdir(outdir) if n.startswith(TMP_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(outdir, name)
        parts = name.split("@")
        dead = False
        if len(parts) == 3 and parts[1] == host and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                dead = True
            except (PermissionError, OverflowError):
                pass
        try:
            old = now - os.lstat(path).st_mtime > max_age_s
        except OSError:
            continue
        if dead or old:
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _review_audit(options: DeidOptions, destination: str) -> DeidOptions:
    from dataclasses import replace
    return replace(options, audit_dir=os.path.dirname(destination))


def _residual_scan(tmp: str, plan: Plan, options: DeidOptions) -> list:
    from .scanning import residual_targets, scan_images
    kept = [d.image.index for d in plan.images if d.action != "remove"]
    targets = residual_targets(plan, {src: out for out, src in enumerate(kept)})
    scans = scan_images(tmp, targets, "output", options.identifiers, options.ocr)
    if options.new_id:  # the generated label shows the research ID on purpose
        for sc in scans:
            if sc.result is not None:
                sc.result.findings = [f for f in sc.result.findings if f.value.strip() != options.new_id]
    return scans


def _edits(slide: OpenedSlide, plan: Plan, options: DeidOptions, deferred: bool = False):
    """Tile edits: APPn/COM segments stripped, then regions and macro labels blanked.
    ``deferred``: JPEG tiles judged by their headers; the full check is ``edits.tiles.pending``."""
    from .redaction import blank_macro_labels, plan_regions, stripped_segments

    tf = slide.container
    edits = stripped_segments(tf, plan, deferred)
    blank_macro_labels(tf, plan, slide.format, options.fill, edits)
    plan_regions(tf, plan, list(plan.regions), options.fill, edits)
    return edits


class _StreamCheck(threading.Thread):
    """The stream rule's full check (every byte of every JPEG tile up to its first EOI), run
    beside the kernel's copy instead of before it. The headers, where encoders put their
    comments, were judged before writing; this finds what only the entropy-coded data or the
    bytes after an EOI show. Joined before verification: nothing is published unchecked."""

    def __init__(self, path: str, pending: list):
        super().__init__(daemon=True)
        self.path, self.pending = path, pending
        self.dirty: list[tuple[int, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        from .tiff.jpegsegs import check_pending
        try:
            self.dirty = check_pending(self.path, self.pending)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc


def _apply(slide: OpenedSlide, plan: Plan, tmp: str, options: DeidOptions, on_recipe=None) -> dict[int, dict[int, bytes]]:
    """Write the output. Optimistic: tiles with clean headers are copied while their bytes are
    checked; if the check finds a stream the rule changes, the output is written again with
    the exact edits (a rare, hostile or unusual file pays two writes, never a leak)."""
    from .tiff.writer import write_tiff

    tf = slide.container
    edits = _edits(slide, plan, options, deferred=True)
    check = _StreamCheck(tf.path, edits.tiles.pending)
    check.start()
    try:
        ifds, kind = slide.module.build(tf, plan, edits.tiles, edits.mcu_starts)
        if not ifds:
            raise WsideidError("the plan keeps no image: nothing to write")
        write_tiff(tf.path, tmp, ifds, kind, tf.byteorder, on_recipe=on_recipe)
    finally:
        check.join()
    if check.error is not None:
        raise check.error
    if check.dirty:
        os.unlink(tmp)
        edits = _edits(slide, plan, options)  # the exact pass: every stream parsed as needed
        ifds, kind = slide.module.build(tf, plan, edits.tiles, edits.mcu_starts)
        write_tiff(tf.path, tmp, ifds, kind, tf.byteorder, on_recipe=on_recipe)
    return edits.tiles


def _verify(slide: OpenedSlide, tmp: str, plan: Plan, edited: dict, options: DeidOptions) -> VerifyReport:
    from .verify import verify_tiff
    return verify_tiff(slide.container, tmp, plan, slide.module, edited, full=options.verify == "full",
                       identifiers=options.identifiers)


def plan_summary(plan: Plan) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for d in plan.fields:
        counts[d.action] = counts.get(d.action, 0) + 1
    return {"actions": counts, "unknown": len(plan.unknowns()),
            "images": {f"{d.image.index}:{d.image.role}": d.action for d in plan.images}}


def verify_output(original: str | os.PathLike, output: str | os.PathLike, options: DeidOptions | None = None) -> VerifyReport:
    """Re-plan the original with the same options and check an existing output against it."""
    options = options or DeidOptions(verify="full")
    check_name_options(options)
    if _wants_dicom(original, None):
        from .dicom import pipeline as dicom_pipeline
        return dicom_pipeline.verify_output(original, output, options)
    slide = open_slide(original)
    plan = _plan(slide, options)
    from .verify import verify_tiff
    edited = _edits(slide, plan, options).tiles
    try:
        return verify_tiff(slide.container, os.fspath(output), plan, slide.module, edited,
                           full=options.verify == "full", identifiers=options.identifiers)
    except WsideidError as exc:
        rep = VerifyReport()
        rep.add("reparse", False, str(exc))
        return rep


def _deidentify_in_place(input_path: str, options: DeidOptions) -> DeidResult:
    """``--in-place``: rewrite the slide itself, crash-safely (see inplace.py)."""
    from dataclasses import replace

    from .audit import write_audit
    from .inplace import deidentify_in_place, recover
    from .verify import sample_digests, verify_tiff

    t0 = time.perf_counter()
    if not os.path.isfile(input_path):
        raise WsideidError("input does not exist" if not os.path.exists(input_path) else "input is not a file")
    recovered = recover(input_path)
    slide = open_slide(input_path)
    plan = _plan(slide, options)
    edits = _edits(slide, plan, options)
    full = options.verify == "full"
    before = sample_digests(slide.container, plan, edits.tiles, full)

    def check(path: str) -> VerifyReport:
        rep = verify_tiff(slide.container, path, plan, slide.module, edits.tiles, full=False,
                          openslide_check=True, identifiers=options.identifiers)
        after = sample_digests(slide.container, plan, edits.tiles, full)
        rep.add("pixels-unchanged-in-place", before == after, f"{len(before)} tile digests compared before/after")
        return rep

    res = deidentify_in_place(slide, plan, edits, check)
    if not res.report.ok:
        raise VerificationFailed(f"in-place result failed verification; its journal was kept ({failure_summary(res.report)})")
    timings = {"total": time.perf_counter() - t0, "in-place": res.seconds}
    result = DeidResult(input_path, input_path, slide.format, plan, res.report, "published", timings=timings,
                        error=recovered)
    audit_dir = options.audit_dir or os.path.dirname(os.path.abspath(input_path))
    result.audit_path = write_audit(result, replace(options, audit_dir=audit_dir))
    return result
