"""Audit records: what was done to a slide, without any PHI value.

One JSON file per slide, next to the output (or in ``--audit-dir``). It
names every field by its path and the action taken, never its value. The
one place a name from the file reaches the record is a field path; an
unknown key whose name does not look like a plain identifier is replaced by
a short hash, because a hostile or careless file can put anything in a key.
The date shift offset and the secret are never recorded: the offset would
undo the shift.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from typing import Any

from . import __version__
from . import budget
from .errors import WsideidError

_PLAIN_KEY = re.compile(r"^[A-Za-z;@#][A-Za-z0-9 ._\-\[\]/;*]{0,47}$")


def safe_path(path: str, known: bool) -> str:
    """A field path fit for the audit: unknown odd-looking segments are hashed."""
    if known:
        return path
    parts = path.split("/")
    last = parts[-1]
    if not _PLAIN_KEY.match(last) or re.search(r"\d{4,}", last):
        parts[-1] = "key-sha256:" + hashlib.sha256(last.encode()).hexdigest()[:12]
    return "/".join(parts)


def audit_record(result) -> dict[str, Any]:
    plan = result.plan
    fields = [{"path": safe_path(d.field.path, not d.unknown), "action": d.action, "rule": d.rule,
               **({"unknown": True} if d.unknown else {})} for d in plan.fields]
    images = [{"index": d.image.index, "role": d.image.role, "size": [d.image.width, d.image.height],
               "compression": d.image.compression, "action": d.action, "rule": d.rule} for d in plan.images]
    return {
        "tool": "wsideid", "version": __version__,
        "status": result.status,
        "format": result.format,
        "output_name": os.path.basename(result.output) if result.output else None,
        "profile": {"name": plan.profile_name, "sha256": plan.profile_sha256,
                    "sources": plan.options.get("profile_sources", [])},
        "options": {k: v for k, v in plan.options.items() if k != "profile_sources"},
        "sha256": result.sha256,
        # Bounded (wsideid/budget.py): a hostile slide must not make a 481 MB audit.
        **_bounded("images", images, budget.MAX_AUDIT_IMAGES),
        **_bounded("fields", fields, budget.MAX_AUDIT_FIELDS),
        "verification": [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in result.report.checks]
        if result.report else [],
        "detectors": [sc.to_dict(include_values=False) for sc in getattr(result, "scans", [])],
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
    }


def _bounded(name: str, records: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    kept, rest = budget.bounded_list(records, limit)
    return {name: kept, **({f"{name}_omitted": rest} if rest else {})}


def write_audit(result, options) -> str:
    folder = options.audit_dir or os.path.dirname(result.output)
    path = os.path.join(folder, os.path.basename(result.output) + ".audit.json")
    record = json.dumps(audit_record(result), indent=1)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".wsideid-tmp-audit-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(record)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise WsideidError(f"cannot write the audit record: {exc.strerror or type(exc).__name__}") from None
    return path
