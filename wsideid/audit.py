"""Audit records: what was done to a slide, without any PHI value, and the lab's own record.

Two records per slide:

* the **audit**, next to the output (or in ``--audit-dir``), which travels
  with the shared slide. It names every field by its path and the action
  taken, never its value. It holds the output's hash (BLAKE3 by default,
  keyed by the algorithm's name; see hashing.py) but not the input's
  (that hash would link the shared file back to the identified source), and
  not the source's name. Key names are the one place a file's own text
  could reach it: the name of every unknown key, and of every key that a
  profile *pattern* (not a literal name) matched, is replaced by an HMAC
  under the run's secret (``key-hmac:<12 hex>``), whatever it looks like.
  It says where the secret came from (``file``, ``environment`` or
  ``random per run``), never the secret.
* the **lab record**, in the review folder (``records/<output>.lab.json``),
  which never leaves the lab: the input's path (and hash, with
  ``--hash-input``), and each hashed
  key name with its verbatim text, so that the lab can still read its audits.

The date shift offset and the secret are in neither: the offset would undo
the shift.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from . import __version__
from . import budget
from .errors import WsideidError
from .keys import Secret
from .model import file_chose_last, split_file_text, vouched_prefixes
from .options import DeidOptions
from .result import DeidResult

LAB_RECORDS = "records"


def key_hmac(secret: Secret, key: str) -> str:
    return "key-hmac:" + secret.digest("audit-key", key).hex()[:12]


from_file = file_chose_last  # (the name callers and tests use)


def safe_path(path: str, known: bool, rule: str, secret: Secret, vouched: set[str] | None = None) -> str:
    """A field path fit for the OUTDIR audit: the part of it taken from the file is replaced by its
    HMAC: the last segment, and with ``vouched`` (``model.vouched_prefixes``) every segment after
    the longest prefix a profile-named field shares (an unknown XML element named after the
    patient was printed in the audit)."""
    if not from_file(path, known, rule):
        return path
    if vouched is None:
        head, _, last = path.rpartition("/")
    else:
        head, last = split_file_text(path, vouched)
    hashed = key_hmac(secret, last)
    return f"{head}/{hashed}" if head else hashed


def _secret_of(options: DeidOptions) -> Secret:
    secret = options.secret
    if secret is None:
        from .keys import run_secret
        secret = run_secret(None, once=True)
    return secret


def audit_record(result: DeidResult, secret: Secret) -> dict[str, Any]:
    plan = result.plan
    vouched = vouched_prefixes(plan.fields)
    fields = [{"path": safe_path(d.field.path, not d.unknown, d.rule, secret, vouched), "action": d.action,
               "rule": d.rule,
               **({"unknown": True} if d.unknown else {})} for d in plan.fields]
    images = [{"index": d.image.index, "role": d.image.role, "size": [d.image.width, d.image.height],
               "compression": d.image.compression, "action": d.action, "rule": d.rule} for d in plan.images]
    return {
        "tool": "wsideid", "version": __version__,
        "status": result.status,
        "format": result.format,
        "output_name": os.path.basename(result.output) if result.output else None,
        "secret": secret.source,
        "profile": {"name": plan.profile_name, "sha256": plan.profile_sha256,
                    "sources": plan.options.get("profile_sources", [])},
        "options": {k: v for k, v in plan.options.items() if k != "profile_sources"},
        "hash_algorithm": _hash_key(result),
        _hash_key(result): {k: v for k, v in result.sha256.items() if k.startswith("output")},
        # Bounded (wsideid/budget.py): a hostile slide must not make a 481 MB audit.
        **_bounded("images", images, budget.MAX_AUDIT_IMAGES),
        **_bounded("fields", fields, budget.MAX_AUDIT_FIELDS),
        "verification": result.report.to_records()
        if result.report else [],
        "detectors": [sc.to_dict(include_values=False) for sc in result.scans],
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
    }


def _hash_key(result: DeidResult) -> str:
    """The hash table's key names its algorithm ("sha256", "blake3"; see hashing.py), and
    ``hash_algorithm`` says which key that is."""
    return result.hash_algorithm


def record_hashes(record: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(algorithm, hashes) of an audit or lab record (records before ``hash_algorithm``: sha256)."""
    algorithm = record.get("hash_algorithm") or "sha256"
    return algorithm, record.get(algorithm) or {}


def _bounded(name: str, records: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    kept, rest = budget.bounded_list(records, limit)
    return {name: kept, **({f"{name}_omitted": rest} if rest else {})}


def lab_record(result: DeidResult, secret: Secret, origin: str, named_by: str) -> dict[str, Any]:
    """What the OUTDIR audit leaves out, for the lab: input path and hashes, verbatim key names."""
    plan = result.plan
    vouched = vouched_prefixes(plan.fields)
    keys = [{"path": d.field.path, "audit_path": safe_path(d.field.path, not d.unknown, d.rule, secret, vouched),
             "action": d.action, **({"unknown": True} if d.unknown else {})}
            for d in plan.fields if from_file(d.field.path, not d.unknown, d.rule)]
    return {
        "tool": "wsideid", "version": __version__,
        "input": origin,
        "output": os.path.abspath(result.output) if result.output else None,
        "output_name": os.path.basename(result.output) if result.output else None,
        "named_by": named_by,
        "status": result.status,
        "format": result.format,
        "secret": secret.source,
        "hash_algorithm": _hash_key(result),
        _hash_key(result): dict(result.sha256),
        "hashed_keys": keys,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _write_json(folder: str, name: str, record: dict[str, Any], what: str, root: str | None = None,
                mode: int = 0o644) -> str:
    """The audit goes with the slide (0644 less the umask, as the slide); the lab record is owner-only."""
    path = os.path.join(folder, name)
    text = json.dumps(record, indent=1)
    tmp = None
    from .safefs import check_no_links, create_temp
    try:
        os.makedirs(folder, exist_ok=True)
        check_no_links(root or folder, path)  # never through a link (wsideid.safefs)
        fd, tmp = create_temp(folder, ".wsideid-tmp-audit-", mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise WsideidError(f"cannot write the {what} in {folder}: {exc.strerror or type(exc).__name__}") from None
    return path


def write_audit(result: DeidResult, options: DeidOptions) -> str:
    folder = options.audit_dir or os.path.dirname(result.output)
    return _write_json(folder, os.path.basename(result.output) + ".audit.json",
                       audit_record(result, _secret_of(options)), "audit record")


def write_lab_record(result: DeidResult, options: DeidOptions, review: str, origin: str, named_by: str) -> str:
    """``<review>/records/<output name>.lab.json`` (the review folder is owner-only: it holds PHI)."""
    from .naming import make_review_dir
    make_review_dir(review)
    return _write_json(os.path.join(review, LAB_RECORDS), os.path.basename(result.output) + ".lab.json",
                       lab_record(result, _secret_of(options), origin, named_by), "lab record", root=review,
                       mode=0o600)
