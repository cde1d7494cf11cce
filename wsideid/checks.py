"""Verification as named checks: one vocabulary for every driver.

Why one vocabulary: the audit, ``wsideid verify`` and the QC page list the
checks of every slide, whatever its format, as the same rows in the same
order, so a reader compares slides row by row and a missing row means
something. Each driver runs its own code for a check (a TIFF's image data
are tiles, a DICOM's are frames, a MIRAX's are records), but a name means
the same thing everywhere (``docs/architecture.md`` has the table per
driver). A driver's sub-checks are parts of one row (their names stay in
its detail text), never rows of their own.

Every report holds every name exactly once:

- ``passed`` / ``failed``: the check ran;
- ``not-applicable``: nothing of the kind exists here (the format has no
  validator; no region was asked for), with a one-line reason the driver
  gives up front;
- ``not-run``: the check could not run: an earlier check failed and left
  nothing sound to read (the output does not parse), or what it needs is
  missing. A check that did not run proves nothing, so it is not ok either:
  only ``passed`` and ``not-applicable`` let a slide through.

Fail closed: a check the driver neither ran nor declared not applicable is
``failed`` ("not run by the driver"), so a forgotten check refuses the slide
instead of passing unseen; and a report with any ``failed`` row is not ok.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TypeVar


class Check(enum.Enum):
    """The check names, in the order every report lists them."""

    REPARSE = "reparse"
    PLAN_HELD = "plan-held"
    NO_UNKNOWN_FIELDS = "no-unknown-fields"
    VALUES_PASS_POLICY = "values-pass-policy"
    IDENTIFIERS_REPLACED = "identifiers-replaced"
    ROLES = "roles"
    IMAGE_DATA = "image-data"
    COMPRESSED_STREAMS = "compressed-streams"
    REGIONS_BLANK = "regions-blank"
    RESIDUAL_NEEDLES = "residual-needles"
    READER = "reader"
    VALIDATOR = "validator"
    OUTPUT_HASH = "output-hash"

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS: dict[Check, str] = {
    Check.REPARSE: "the output parses with our own reader, as the same format",
    Check.PLAN_HELD: "the output holds what the plan says: every kept field as planned, no removed one",
    Check.NO_UNKNOWN_FIELDS: "the output re-planned has no field the profile does not know",
    Check.VALUES_PASS_POLICY: "every value in the output passes its type or pattern as it stands",
    Check.IDENTIFIERS_REPLACED: "identifiers (UIDs, slide IDs) are the keyed replacements",
    Check.ROLES: "the output holds exactly the kept images, with their planned roles and sizes",
    Check.IMAGE_DATA: "pixel data (tiles, frames, records) equal the source's, or the planned edit's",
    Check.COMPRESSED_STREAMS: "kept JPEG / JPEG 2000 streams hold only decoding segments; edited ones decode as before",
    Check.REGIONS_BLANK: "every blanked region reads as the fill colour",
    Check.RESIDUAL_NEEDLES: "no removed value (any spelling, encoding, case) in any non-pixel byte",
    Check.READER: "an independent reader (OpenSlide, wsidicom) opens the output with the expected levels",
    Check.VALIDATOR: "a standard validator reports no error the input did not have",
    Check.OUTPUT_HASH: "the file on disk hashes to the hash recorded while it was written",
}


class CheckStatus(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not-applicable"
    NOT_RUN = "not-run"


@dataclass(frozen=True)
class CheckResult:
    """One row of a report."""

    check: Check
    status: CheckStatus
    detail: str = ""
    seconds: float | None = None

    @property
    def name(self) -> str:
        return self.check.value

    @property
    def ok(self) -> bool:
        """Passed, or nothing of the kind exists here: a check that did not run proves nothing."""
        return self.status in (CheckStatus.PASSED, CheckStatus.NOT_APPLICABLE)

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    def to_dict(self) -> dict[str, object]:
        """The one shape of a check in the audit, batch records and ``--json`` output."""
        return {"check": self.name, "status": self.status.value, "ok": self.ok, "detail": self.detail,
                "seconds": None if self.seconds is None else round(self.seconds, 4)}


@dataclass(frozen=True)
class _Part:
    label: str
    status: CheckStatus
    detail: str


class VerifyReport:
    """The results of one verification: parts recorded per check, read back as one row per name."""

    def __init__(self, not_applicable: Mapping[Check, str] | None = None):
        self._parts: dict[Check, list[_Part]] = {}
        self._seconds: dict[Check, float] = {}
        for check, why in (not_applicable or {}).items():
            self.not_applicable(check, why)

    # -- recording ------------------------------------------------------------------

    def record(self, check: Check, ok: bool, detail: str = "", part: str = "") -> None:
        """One (sub-)check's outcome; ``part`` names it inside the row when a row has several.
        A result replaces a not-applicable or not-run entry made before for the same part (a
        later stage, such as hashing, may run a check the verifier could not); a named part
        never replaces a not-run entry of the whole row: what could not run stays unrun, and
        a passing part beside it does not pass the row."""
        parts = [p for p in self._parts.get(check, [])
                 if p.status in (CheckStatus.PASSED, CheckStatus.FAILED) or (p.label and p.label != part)
                 or (part and not p.label and p.status is CheckStatus.NOT_RUN)]
        parts.append(_Part(part, CheckStatus.PASSED if ok else CheckStatus.FAILED, detail))
        self._parts[check] = parts

    def not_applicable(self, check: Check, why: str, part: str = "") -> None:
        """Nothing of the kind exists here. With ``part``, one named part of a row does not apply
        (OpenSlide reads no JPEG-LS, while wsidicom does): the row lists it as such, and its
        status comes from the parts that ran (a row of not-applicable parts only is not-applicable)."""
        if not part:
            self._mark(check, CheckStatus.NOT_APPLICABLE, why)
            return
        parts = [p for p in self._parts.get(check, []) if p.label and p.label != part]
        parts.append(_Part(part, CheckStatus.NOT_APPLICABLE, why))
        self._parts[check] = parts

    def not_run(self, check: Check, why: str) -> None:
        """The check could not run (an optional tool is missing); not a failure, said as such."""
        self._mark(check, CheckStatus.NOT_RUN, why)

    def _mark(self, check: Check, status: CheckStatus, why: str) -> None:
        parts = self._parts.get(check, [])
        if any(p.status in (CheckStatus.PASSED, CheckStatus.FAILED) for p in parts):
            if status is CheckStatus.NOT_RUN:  # some of it ran, the rest could not: the row is not run
                self._parts[check] = [p for p in parts if p.label or p.status is not CheckStatus.NOT_RUN] + \
                    [_Part("", status, why)]
            return  # not applicable after a part ran: it applied after all
        self._parts[check] = [_Part("", status, why)]

    def add_seconds(self, check: Check, seconds: float) -> None:
        self._seconds[check] = self._seconds.get(check, 0.0) + seconds

    # -- reading --------------------------------------------------------------------

    @property
    def checks(self) -> list[CheckResult]:
        """Every name of the vocabulary, in its order."""
        first_failed = next((c for c in Check if self._status(c) is CheckStatus.FAILED), None)
        return [self._row(c, first_failed) for c in Check]

    def result(self, check: Check) -> CheckResult:
        return next(r for r in self.checks if r.check is check)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[CheckResult]:
        """The rows that refuse the slide: the failed ones, else those that did not run (a row not
        run because an earlier check failed is that failure's consequence, not a reason of its own)."""
        failed = [c for c in self.checks if c.status is CheckStatus.FAILED]
        return failed or [c for c in self.checks if not c.ok]

    def to_records(self) -> list[dict[str, object]]:
        return [c.to_dict() for c in self.checks]

    def _status(self, check: Check) -> CheckStatus | None:
        parts = self._parts.get(check)
        if not parts:
            return None
        statuses = {p.status for p in parts}
        for s in (CheckStatus.FAILED, CheckStatus.NOT_RUN, CheckStatus.PASSED):  # fail closed: unrun beats passed
            if s in statuses:
                return s
        return CheckStatus.NOT_APPLICABLE

    def _row(self, check: Check, first_failed: Check | None) -> CheckResult:
        status = self._status(check)
        seconds = self._seconds.get(check)
        if status is None:
            if first_failed is not None:
                return CheckResult(check, CheckStatus.NOT_RUN, f"not run: {first_failed.value} failed", seconds)
            return CheckResult(check, CheckStatus.FAILED, "not run by the driver (nor declared not applicable)", seconds)
        if status is CheckStatus.NOT_APPLICABLE:
            seconds = None  # nothing ran
        parts = sorted(self._parts[check], key=lambda p: p.status is not CheckStatus.FAILED)  # failures first
        detail = "; ".join(_part_text(p) if p.label else p.detail for p in parts if p.label or p.detail)
        return CheckResult(check, status, detail, seconds)


def _part_text(p: _Part) -> str:
    if p.status is CheckStatus.NOT_APPLICABLE:
        return f"{p.label}: not applicable: {p.detail}"
    return f"{p.label}: {p.detail or p.status.value}"


class StopChecks(Exception):
    """Raised by a check whose failure leaves the later ones nothing sound to read
    (the output does not parse, its images are not the planned ones)."""


C = TypeVar("C", bound="VerifyContext")


@dataclass
class VerifyContext:
    """What every check reads: the report it writes into, the mode and the user identifiers.
    Each driver's context adds its own objects (the source, the output, the plan)."""

    report: VerifyReport
    full: bool
    identifiers: Sequence[str]


def run_checks(ctx: C, steps: Sequence[tuple[Check, Callable[[C], None]]]) -> VerifyReport:
    """Run ``steps`` in order over ``ctx``, timing each; a ``StopChecks`` ends the run
    (the checks not reached read ``not-run``)."""
    for check, step in steps:
        t0 = time.perf_counter()
        try:
            step(ctx)
        except StopChecks:
            return ctx.report
        finally:
            ctx.report.add_seconds(check, time.perf_counter() - t0)
    return ctx.report


__all__ = ["Check", "CheckResult", "CheckStatus", "MEANINGS", "StopChecks", "VerifyContext", "VerifyReport",
           "run_checks"]
