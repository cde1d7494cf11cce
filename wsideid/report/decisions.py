"""``wsideid review apply``: act on the decisions exported from the QC page.

An approved slide is moved from the review folder into OUTDIR only after it
is verified again (its sha256 against the one recorded when it was written,
then a full re-verification against the source with the options it was made
with), so a file changed or swapped while it waited is never published.
Who decided is written into the slide's audit (the reviewer's name only;
free-text notes may hold PHI and stay in the review folder).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import dataclass

from ..batch import records
from ..batch.job import SlideJob, deid_options
from ..cells import unescape, unescape_row
from ..errors import WsideidError

APPROVE = {"approve", "approved", "yes", "publish"}
REJECT = {"reject", "rejected", "no"}


@dataclass
class Applied:
    new_id: str
    decision: str
    ok: bool
    message: str


DECISION_COLUMNS = ("new_id", "decision", "reviewer", "note")


def read_decisions(path: str) -> list[dict[str, str]]:
    """The QC page's export, or the same table edited in Excel (';' in European locales, tabs,
    UTF-16, a BOM: see wsideid.tables)."""
    from ..tables import decode_text, read_table_file, split_table
    data = read_table_file(path, "the decisions file")
    table = [r for r in split_table(decode_text(data, "the decisions file"), DECISION_COLUMNS, "new_id")
             if any(c.strip() for c in r)]
    header = [c.strip().lower() for c in table[0]] if table else []
    if table and ("new_id" not in header or "decision" not in header):
        raise WsideidError("the decisions file needs the columns new_id and decision (as the QC page exports)")
    return [dict(zip(header, r + [""] * (len(header) - len(r)))) for r in table[1:]]


def reverify(rec: dict) -> str | None:
    """Why the waiting output may not be published, or None when it verifies again."""
    from ..pipeline import verify_output
    out = rec.get("output")
    if not out or not os.path.exists(out):
        return "the flagged output is no longer in the review folder"
    if records.tree_sha256(out, rec.get("output_hash_algorithm") or "sha256") != rec.get("output_sha256"):
        return "the flagged output changed since it was verified (sha256 differs)"
    if records.input_state(rec["source"]) != rec.get("input"):
        return "the source slide changed or is gone; re-run the batch"
    job = SlideJob(**{**rec["job"], "regions": [tuple(r) for r in rec["job"].get("regions", [])]})
    opts = deid_options(job)
    opts.verify = "full"
    try:
        report = verify_output(rec["source"], out, opts)
    except WsideidError as exc:
        return f"re-verification failed: {exc}"
    if not report.ok:
        return "re-verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failures()[:3])
    return None


def _move(src: str, dest_dir: str) -> str:
    """Move a file (or DICOM folder) into ``dest_dir`` via a temporary name; the final name is
    claimed exclusively (wsideid.safefs), so an output published meanwhile is never replaced."""
    from ..safefs import publish_dir, publish_file
    dest = os.path.join(dest_dir, os.path.basename(src))
    if os.path.lexists(dest):
        raise WsideidError(f"{os.path.basename(dest)} already exists in the destination")
    tmp = os.path.join(dest_dir, f".wsideid-tmp-review-{os.getpid()}-{os.path.basename(src)}")
    shutil.move(src, tmp)
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            publish_dir(tmp, dest, False, tmp + ".old")
        else:
            publish_file(tmp, dest, False)
    except WsideidError:
        shutil.move(tmp, src)  # back where it waited
        raise
    return dest


def _update_summary(path: str, new_id: str, status: str, reviewed: str) -> None:
    if not os.path.exists(path):
        return
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols, rows = [unescape(c) for c in reader.fieldnames or []], [unescape_row(r) for r in reader]
    for r in rows:
        if r.get("new_id") == new_id:
            r["status"], r["reviewed"] = status, reviewed
    from ..batch.runner import write_csv
    write_csv(path, rows, list(cols))


def _update_lab_record(review_dir: str, dest: str, status: str, review: dict) -> None:
    """The lab record (``records/<output name>.lab.json``, see wsideid.audit) follows the decision:
    its status, where the output now is, and who decided, so the lab's own record of a slide never
    still says "flagged, in the review folder" for a slide that was published or rejected."""
    from ..audit import LAB_RECORDS
    path = os.path.join(review_dir, LAB_RECORDS, os.path.basename(dest) + ".lab.json")
    lab = records.read_json(path)
    if not isinstance(lab, dict):
        return  # written before lab records existed: nothing to keep in step
    lab.update(status=status, output=os.path.abspath(dest), review=review)
    records.write_json(path, lab, root=review_dir)


def apply_one(rec: dict, decision: str, reviewer: str, note: str, outdir: str, review_dir: str) -> Applied:
    nid = rec["new_id"]
    out = rec["output"]
    audit_src = out + ".audit.json"
    audit = records.read_json(audit_src) or {}
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if decision == "approve":
        why = reverify(rec)
        if why:
            return Applied(nid, decision, False, why)
        dest_dir, status = outdir, "approved"
    else:
        dest_dir, status = os.path.join(review_dir, "rejected"), "rejected"
        from ..safefs import makedirs
        makedirs(review_dir, dest_dir)
    dest = _move(out, dest_dir)
    if decision == "approve" and records.tree_sha256(dest, rec.get("output_hash_algorithm") or "sha256") != rec.get("output_sha256"):
        shutil.move(dest, out)  # should not happen; never leave an unverified file in OUTDIR
        return Applied(nid, decision, False, "the output changed while it was moved")
    audit.update(status=status, review={"decision": status, "reviewer": reviewer, "decided_at": when,
                                        "reverified": decision == "approve"})
    records.write_json(os.path.join(dest_dir, os.path.basename(dest) + ".audit.json"), audit,
                       mode=records.PUBLIC if status == "approved" else 0o600)
    if os.path.exists(audit_src):
        os.unlink(audit_src)
    decided = {"decision": status, "reviewer": reviewer, "note": note, "decided_at": when,
               "reverified": decision == "approve"}
    _update_lab_record(review_dir, dest, status, decided)
    rec.update(status=status, output=dest, audit=os.path.join(dest_dir, os.path.basename(dest) + ".audit.json"),
               review=decided)
    rec["summary"].update(status=status, reviewed=status)
    records.write_json(records.record_path(review_dir, nid), rec, root=review_dir)
    _update_summary(os.path.join(outdir, records.SUMMARY), nid, status, status)
    _update_summary(os.path.join(review_dir, records.SUMMARY), nid, status, status)
    return Applied(nid, decision, True, f"{status}: moved to {'OUTDIR' if status == 'approved' else 'review/rejected'}")


MAX_REVIEWER = 64


def reviewer_problem(who: str) -> str | None:
    """Why ``who`` cannot stand as the reviewer, or None. The reviewer's name is written into the
    audit of an approved slide, which is published in OUTDIR: a cell of 10 MB, or one holding a
    line break or control characters (a note pasted into the wrong column), went there as it was."""
    from ..valuepolicy import control_free
    if len(who) > MAX_REVIEWER:
        return f"the reviewer is longer than {MAX_REVIEWER} characters (a name; notes go in the note column)"
    if not control_free(who):
        return "the reviewer holds a line break or control character"
    return None


def _decided(rows: list[dict[str, str]]) -> dict[str, tuple[int, str]]:
    """new_id -> (first row, decision) for rows that agree; a new_id decided two ways maps to
    (first row, "") so none of its rows is applied (approve then reject of one slide in one file
    left the slide approved and reported the reject as done)."""
    seen: dict[str, tuple[int, str]] = {}
    for n, row in enumerate(rows, start=2):
        nid = (row.get("new_id") or "").strip()
        raw = (row.get("decision") or "").strip().lower()
        decision = "approve" if raw in APPROVE else "reject" if raw in REJECT else raw
        if not raw:
            continue
        first = seen.setdefault(nid, (n, decision))
        if first[1] != decision:
            seen[nid] = (first[0], "")
    return seen


def apply_decisions(decisions: str, outdir: str, review_dir: str | None = None,
                    reviewer: str | None = None) -> list[Applied]:
    """Apply every decided row; each row succeeds or fails on its own."""
    outdir = os.path.abspath(outdir)
    review = records.find_review_dir(outdir, review_dir)
    if reviewer is not None and reviewer_problem(reviewer.strip()):
        raise WsideidError(f"--reviewer: {reviewer_problem(reviewer.strip())}")
    rows = read_decisions(decisions)
    decided = _decided(rows)
    results = []
    for n, row in enumerate(rows, start=2):
        nid = (row.get("new_id") or "").strip()
        raw = (row.get("decision") or "").strip().lower()
        decision = "approve" if raw in APPROVE else "reject" if raw in REJECT else None
        who = (reviewer or row.get("reviewer") or "").strip()
        if not raw:
            continue
        if decision is None:
            results.append(Applied(nid, raw, False, f"row {n}: decision must be approve or reject"))
            continue
        first, agreed = decided[nid]
        if not agreed:
            results.append(Applied(nid, decision, False, f"row {n}: the file decides {nid!r} two ways (first in"
                                                         f" row {first}); nothing done for it"))
            continue
        if first != n:
            results.append(Applied(nid, decision, True, f"row {n}: the same decision as row {first}"))
            continue
        if not who:
            results.append(Applied(nid, decision, False, f"row {n}: no reviewer (column reviewer or --reviewer)"))
            continue
        if reviewer_problem(who):
            results.append(Applied(nid, decision, False, f"row {n}: {reviewer_problem(who)}"))
            continue
        rec = records.load_record(review, nid) if records.check_research_id_ok(nid) else None
        if rec is None:
            results.append(Applied(nid, decision, False, f"row {n}: no slide {nid!r} in this batch"))
        elif rec["status"] != "flagged":
            done = rec["status"] == {"approve": "approved", "reject": "rejected"}[decision]
            results.append(Applied(nid, decision, done, f"row {n}: already {rec['status']}, nothing to do"
                                   + ("" if done else f" (the file says {decision})")))
        else:
            try:
                results.append(apply_one(rec, decision, who, row.get("note") or "", outdir, review))
            except (OSError, WsideidError) as exc:
                results.append(Applied(nid, decision, False, f"row {n}: {exc}"))
    return results
