"""A slide whose worker died after its output was published but before its record was.

The pipeline publishes in this order: name-map row, audit, lab record, then
the rename; the batch writes the slide's record after ``deidentify``
returns. A SIGKILL between the rename and that record used to leave a
published output no record vouches for, and the rerun refused it as
"output already exists" (it could not tell it from a file some other run
wrote), so the user needed ``--overwrite``.

Now the batch marks a slide as running, in its record, before it starts.
On a rerun, a running record of the very same job (same options
fingerprint, same input size and mtime) is finished from the disk: the lab
record that the pipeline wrote after the running mark, for this source,
names the output, and the output still hashes to what that lab record
says. Only then does the output count as this batch's; anything short of
that proof leaves the slide to be redone, and a published file is never
touched without it.

A flagged output (in the review folder, not published) is not adopted: the
QC page needs the detector findings its record would have held, so the
proven-ours flagged file is dropped and the slide redone.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import asdict
from typing import Any, Callable

from ..audit import LAB_RECORDS, record_hashes
from .records import input_state, read_json, record_path, tree_sha256, write_json

RUNNING = "running"
RECOVERABLE = ("published", "flagged")


def mark_running(job: Any, prev: dict | None) -> None:
    """The record a killed worker leaves behind: which job, on which input, started when.

    It keeps the earlier output's name (``previous_output``) so that a rerun
    with ``--overwrite`` still knows what this slide published before.
    """
    prev = prev or {}
    summary = {"row": job.row, "new_id": job.new_id, "status": RUNNING, "run": "interrupted"}
    write_json(record_path(job.review_dir, job.new_id), {
        "row": job.row, "new_id": job.new_id, "named_by": job.named_by, "status": RUNNING,
        "source": job.source, "fingerprint": job.fingerprint, "input": input_state(job.source),
        "previous_output": prev.get("output") or prev.get("previous_output"),
        "job": asdict(job), "summary": summary, "images": [], "scans": [], "fields": [], "checks": [],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, root=job.review_dir)


def _started_ns(job: Any) -> int | None:
    """The running mark's mtime: the same (coarse) file-system clock the lab record is stamped by."""
    try:
        return os.stat(record_path(job.review_dir, job.new_id)).st_mtime_ns
    except OSError:
        return None


def _hashes_match(output: str, lab: dict) -> bool:
    """The output on disk is what the lab record hashed: one file, or a DICOM folder's instances."""
    algorithm, hashes = record_hashes(lab)
    if os.path.islink(output) or not os.path.exists(output):
        return False
    if hashes.get("output"):
        return tree_sha256(output, algorithm) == hashes["output"]
    per_instance = sorted(v for k, v in hashes.items() if k.startswith("output["))
    if not per_instance or not os.path.isdir(output):
        return False
    names = sorted(os.listdir(output))
    found = sorted(tree_sha256(os.path.join(output, n), algorithm) or "" for n in names
                   if not n.endswith(".audit.json"))
    return found == per_instance


def find_interrupted(job: Any, prev: dict | None, ours: Callable[[str | None], bool]) -> dict | None:
    """The lab record proving that this running job published (or flagged) its output, else None.

    ``ours(path)`` says whether a path lies in this OUTDIR or review folder.
    """
    if not prev or prev.get("status") != RUNNING:
        return None
    if prev.get("fingerprint") != job.fingerprint or prev.get("input") != input_state(job.source):
        return None
    started = _started_ns(job)
    folder = os.path.join(job.review_dir, LAB_RECORDS)
    if started is None or not os.path.isdir(folder):
        return None
    source = os.path.abspath(job.source)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not name.endswith(".lab.json") or not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < started:
            continue
        lab = read_json(path) or {}
        output = lab.get("output")
        if lab.get("input") != source or lab.get("status") not in RECOVERABLE or not ours(output):
            continue
        if _hashes_match(output, lab):
            return lab
    return None


def finish_record(job: Any, prev: dict, lab: dict, summary_columns: list[str]) -> dict[str, Any]:
    """Complete the running record from the lab record; returns the summary row."""
    output = lab["output"]
    row: dict[str, Any] = {c: "" for c in summary_columns}
    row.update(row=job.row, new_id=job.new_id, status=lab["status"], run="recovered",
               format=lab.get("format") or "", output=os.path.basename(output))
    algorithm, hashes = record_hashes(lab)
    record = {**prev, "status": lab["status"], "output": output,
              "output_sha256": hashes.get("output") or tree_sha256(output),
              "output_hash_algorithm": algorithm if hashes.get("output") else "sha256",
              "audit": output + ".audit.json" if os.path.exists(output + ".audit.json") else None,
              "summary": row, "recovered": True, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(record_path(job.review_dir, job.new_id), record, root=job.review_dir)
    return row


def recover(job: Any, prev: dict | None, ours: Callable[[str | None], bool],
            summary_columns: list[str]) -> dict[str, Any] | None:
    """The summary row of an interrupted slide whose published output is proven ours, else None.

    A proven flagged output is dropped (with its audit) so that the slide is
    redone with its findings; nothing unproven is touched.
    """
    lab = find_interrupted(job, prev, ours)
    if lab is None:
        return None
    if lab["status"] == "published":
        return finish_record(job, prev or {}, lab, summary_columns)
    from ..safefs import remove_tree
    for path in (lab["output"], lab["output"] + ".audit.json"):
        remove_tree(path)
    return None
