"""The review folder's bookkeeping: one JSON record per slide, and the batch link.

Records hold PHI (source path, identifiers, detector values) and therefore
live only in the review folder. They are what lets a rerun skip finished
slides, what the QC page is built from, and what ``review apply`` updates.
OUTDIR gets only ``batch.json`` with a random batch id (no paths, no names)
so that ``wsideid report OUTDIR`` can check that a review folder belongs to
it.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from ..errors import WsideidError
from ..hashing import output_parts, tree_sha256  # noqa: F401 - re-exported

BATCH_FILE = "batch.json"  # in OUTDIR: {"batch_id": ...} only
RUN_FILE = "batch-run.json"  # in the review folder: batch id, OUTDIR path, manifest path
SUMMARY = "batch-summary.csv"
MAPPING = "mapping.csv"
REPORT = "qc-report.html"
PUBLIC = 0o644  # OUTDIR is handed over: its files are readable by the group and others (less if the umask says so)


def write_json(path: str, data: Any, root: str | None = None, mode: int = 0o600) -> None:
    """Atomic write: a reader (or a killed run) never sees half a record; never through a link
    (folders below ``root`` and the file itself are checked, see wsideid.safefs). Owner-only
    unless told: records live in the review folder; OUTDIR's files pass ``PUBLIC``."""
    from ..safefs import makedirs, write_atomic
    folder = os.path.dirname(os.path.abspath(path))
    makedirs(root or folder, folder)
    write_atomic(path, json.dumps(data, indent=1, default=str), root=root or folder, mode=mode)


def read_json(path: str) -> Any | None:
    """A record, or None when there is none to read. Read as the table files are (a regular file,
    bounded, opened without blocking): a batch.json that was /dev/zero ran ``review apply`` out of
    memory, and a FIFO hung it."""
    from ..tables import read_table_file
    try:
        return json.loads(read_table_file(path, "a batch record"))
    except (WsideidError, ValueError):
        return None


def record_path(review_dir: str, new_id: str) -> str:
    return os.path.join(review_dir, "slides", f"{new_id}.json")


def load_record(review_dir: str, new_id: str) -> dict | None:
    return read_json(record_path(review_dir, new_id))


def all_records(review_dir: str) -> list[dict]:
    folder = os.path.join(review_dir, "slides")
    if not os.path.isdir(folder):
        return []
    out = [read_json(os.path.join(folder, n)) for n in sorted(os.listdir(folder)) if n.endswith(".json")]
    return sorted((r for r in out if r), key=lambda r: (r.get("row") or 0, r.get("new_id", "")))


def input_state(path: str) -> dict[str, int] | None:
    """Size and mtime of the source (a DICOM folder: summed over its files)."""
    try:
        if os.path.isdir(path):
            size = mtime = 0
            for n in sorted(os.listdir(path)):
                st = os.stat(os.path.join(path, n))
                size, mtime = size + st.st_size, max(mtime, st.st_mtime_ns)
            return {"size": size, "mtime_ns": mtime}
        st = os.stat(path)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return None


def link_batch(outdir: str, review_dir: str, manifest: str) -> str:
    """Tie OUTDIR and the review folder together by a random id; refuse a mismatch."""
    out_file, run_file = os.path.join(outdir, BATCH_FILE), os.path.join(review_dir, RUN_FILE)
    out_id = (read_json(out_file) or {}).get("batch_id")
    run = read_json(run_file) or {}
    run_id = run.get("batch_id")
    if out_id and run_id and out_id != run_id:
        raise WsideidError("the review folder belongs to another batch than OUTDIR (pass the right --review-dir)")
    batch_id = out_id or run_id or uuid.uuid4().hex
    write_json(out_file, {"tool": "wsideid", "batch_id": batch_id}, mode=PUBLIC)
    write_json(run_file, {"batch_id": batch_id, "outdir": os.path.abspath(outdir),
                          "review_dir": os.path.abspath(review_dir), "manifest": os.path.abspath(manifest)})
    return batch_id


def find_review_dir(outdir: str, review_dir: str | None = None) -> str:
    """The review folder a run used for OUTDIR: --review-dir, else the sibling OUTDIR-review.

    OUTDIR does not name it (a handed-over folder should not point back into
    the lab), so a non-default review folder must be given again; the batch
    id in both folders proves they belong together.
    """
    outdir = os.path.abspath(outdir)
    review = os.path.abspath(review_dir) if review_dir else outdir.rstrip(os.sep) + "-review"
    out_id = (read_json(os.path.join(outdir, BATCH_FILE)) or {}).get("batch_id")
    if not out_id:
        raise WsideidError("OUTDIR holds no batch.json: it was not written by `wsideid run`")
    run = read_json(os.path.join(review, RUN_FILE))
    if not run:
        raise WsideidError("no review folder for this OUTDIR (the default is OUTDIR-review; pass --review-dir)")
    if run.get("batch_id") != out_id:
        raise WsideidError("the review folder belongs to another batch than OUTDIR (pass the right --review-dir)")
    return review


def check_separate(outdir: str, review_dir: str) -> None:
    """The review folder holds PHI: it may be neither OUTDIR nor inside it (nor the reverse)."""
    from ..naming import check_review_dir
    check_review_dir(outdir, review_dir)


def check_research_id_ok(new_id: str) -> bool:
    """A research ID from a file we did not write (decisions CSV) is safe to use as a record name."""
    from .manifest import check_research_id
    return check_research_id(new_id) is None
