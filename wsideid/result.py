"""What one de-identification run returns (``DeidResult``), for every driver alike."""

from __future__ import annotations

from dataclasses import dataclass, field

from .checks import VerifyReport
from .model import Plan


@dataclass
class DeidResult:
    input: str
    output: str | None
    format: str
    plan: Plan | None
    report: VerifyReport | None
    status: str  # published | flagged | failed
    error: str | None = None
    scans: list = field(default_factory=list)  # slide_scan.ImageScan, source and residual
    audit_path: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # hashes (hash_algorithm); input's: lab record only
    hash_algorithm: str = "sha256"
    named_by: str | None = None  # research-id | pseudonym | kept-name
    replaced: bool = False  # --overwrite replaced an existing output of the same name (callers say so)
