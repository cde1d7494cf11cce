"""Publishing one output, the same way for every driver.

The steps after a driver has written and verified its output under a
temporary name: hash, route (clean output folder or the review folder's
``flagged/``), record (name map, audit, lab record) and only then rename
into place. Why one module: these rules are what makes a run safe to kill
and to repeat (never a file at the output path that was not verified, never
a slide without its record), and a second copy of them drifts.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import replace
from typing import Callable, Sequence

from .errors import VerificationFailed, WsideidError
from .hashing import Hasher, sha256_file  # noqa: F401 - re-exported
from .checks import VerifyReport
from .naming import OutputName
from .options import DeidOptions
from .result import DeidResult
from .safefs import LinkRefused, NameTaken, claim, publish_dir, publish_file, remove_dead_claims

TMP_PREFIX = ".wsideid-tmp-"


def temp_name() -> str:
    """A temp name in OUTDIR that says which host and process own it."""
    import socket
    return f"{TMP_PREFIX}{secrets.token_hex(6)}@{socket.gethostname()}@{os.getpid()}"


def clean_stale_temps(outdir: str, max_age_s: float = 6 * 3600) -> None:
    """Remove temp files a killed run left in OUTDIR.

    Only when the owning process is gone from *this* host (OUTDIR may be
    shared storage written by Dask workers elsewhere), or when it is old.
    Claim files of dead runs go too: a single ``deid`` killed between its
    publish and the claim's release would otherwise leave one for hours.
    """
    import shutil
    import socket
    remove_dead_claims(outdir)
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


def check_input_and_output(input_path: str, outdir: str, is_folder_ok: bool = False) -> None:
    """The input exists (a file, or a folder where the driver reads folders) and OUTDIR is a folder."""
    if not os.path.exists(input_path):
        raise WsideidError("input does not exist")
    if not is_folder_ok and not os.path.isfile(input_path):
        raise WsideidError("input is not a file")
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")


def check_not_input(final: str, input_path: str, files: Sequence[str] = ()) -> None:
    """The output path is not the input itself (by path, link or hard link), nor a folder
    holding the input's files."""
    real = os.path.realpath(final)
    if os.path.exists(final) and (real == os.path.realpath(input_path) or os.path.samefile(final, input_path)
                                  or any(os.path.dirname(os.path.realpath(f)) == real for f in files)):
        raise WsideidError("the output would overwrite the input (use another output folder)")


def failure_summary(report: VerifyReport, limit: int = 3) -> str:
    """The first failed checks, on one line; details may quote file-made paths, so
    whitespace is collapsed and the text is capped."""
    text = "; ".join(f"{c.name}: {' '.join(str(c.detail).split())}" for c in report.failures()[:limit])
    return text[:400]


def require_ok(report: VerifyReport, what: str = "output failed verification, nothing published") -> None:
    if not report.ok:
        raise VerificationFailed(f"{what} ({failure_summary(report)})", tuple(c.name for c in report.failures()))


def stat_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class InputGuard:
    """The input's files as they were when the run began; ``check`` refuses to publish
    when any of them changed while it was being processed."""

    def __init__(self, paths: Sequence[str]):
        self.before = {p: stat_key(p) for p in paths}

    def add(self, paths: Sequence[str]) -> None:
        """Files known only once the input is opened (a DICOM folder's instances)."""
        for p in paths:
            self.before.setdefault(p, stat_key(p))

    def check(self) -> None:
        if any(stat_key(p) != k for p, k in self.before.items()):
            raise WsideidError("the input changed while it was being processed; nothing was published")


def drop_research_id(scans: list, new_id: str | None, stage: str | None = None) -> list:
    """A generated label shows the research ID on purpose: that finding is not PHI."""
    if new_id:
        for sc in scans:
            if sc.result is not None and (stage is None or sc.stage == stage):
                sc.result.findings = [f for f in sc.result.findings if f.value.strip() != new_id]
    return scans


def is_flagged(scans: list) -> bool:
    """A residual finding or a detector that could not read a kept image holds the slide back."""
    return any(s.stage == "output" and (s.has_phi or s.error) for s in scans)


def route(status: str, final: str, review: str, overwrite: bool) -> str:
    """Where the output goes: ``final``, or the review folder's ``flagged/`` when flagged."""
    if status != "flagged":
        return final
    from .naming import make_review_dir
    make_review_dir(review, "flagged")
    destination = os.path.join(review, "flagged", os.path.basename(final))
    if os.path.lexists(destination) and not overwrite:
        raise WsideidError("a flagged output of this slide is already waiting in the review folder")
    return destination


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
    audit_options = options if result.status == "published" else \
        replace(options, audit_dir=os.path.dirname(result.output or ""))
    audit = write_audit(result, audit_options)
    if name.record:
        write_lab_record(result, options, review, name.origin, name.named_by.value)
    return audit


def commit(result: DeidResult, ready: str, options: DeidOptions, name: OutputName, review: str,
           scratch: str | None = None, companions: Sequence[tuple[str, str]] = (),
           before_records: Callable[[], None] | None = None,
           unchanged: Callable[[], str | None] | None = None) -> None:
    """Claim ``result.output``, write the records, then rename into place: first each
    companion (ready path, name beside the output; a MIRAX slide's folder), then ``ready``
    (a file, or a folder with ``scratch`` to park a replaced one in), which readers open.

    The name is claimed first (a second publisher fails here, before it writes
    anything), then the records land: a kill between them and the rename leaves
    an audit without its slide (a rerun redoes it), never a slide without its record.
    A failure after a companion was published removes it again. ``unchanged`` (the driver's
    hashing) says, before the records and again just before the first rename, whether the output
    is still the one hashed and verified; if not, nothing is published.
    """
    from .safefs import remove_tree
    destination = result.output or ""
    folder = os.path.dirname(destination)
    trash = os.path.join(scratch or os.path.dirname(ready), "old")
    with claim(folder, os.path.basename(destination)):
        check_free(destination, options.overwrite)
        for _, other in companions:
            check_free(os.path.join(folder, other), options.overwrite)
        if before_records is not None:  # a driver's own records (DICOM's pseudonym maps)
            before_records()
        _require_unchanged(unchanged)  # before any record is written
        placed: list[str] = []
        try:
            result.audit_path = record_and_audit(result, options, name, review)
            _require_unchanged(unchanged)  # and right before the rename (records written in between)
            replaced = False
            for part, other in companions:
                target = os.path.join(folder, other)
                replaced = _place(part, target, options.overwrite, trash + "-" + other) or replaced
                placed.append(target)
            result.replaced = _place(ready, destination, options.overwrite, trash) or replaced
        except BaseException:  # a failure or Ctrl-C before the output is in place: no audit without its slide
            for target in placed:
                remove_tree(target)
            if not os.path.lexists(destination):
                remove_tree(result.audit_path or _audit_path(result, options))
            raise


def _audit_path(result: DeidResult, options: DeidOptions) -> str:
    """Where record_and_audit writes the audit (it may be stopped before it says so)."""
    folder = (options.audit_dir if result.status == "published" else None) or os.path.dirname(result.output or "")
    return os.path.join(folder, os.path.basename(result.output or "") + ".audit.json")


def _require_unchanged(unchanged: Callable[[], str | None] | None) -> None:
    why = unchanged() if unchanged is not None else None
    if why is not None:
        raise WsideidError(f"{why}; nothing was published")


def _place(ready: str, destination: str, overwrite: bool, trash: str) -> bool:
    if os.path.isdir(ready):
        return publish_dir(ready, destination, overwrite, trash)
    return publish_file(ready, destination, overwrite)
