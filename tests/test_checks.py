"""The check vocabulary's report (``wsideid.checks``): every name once, in order, failing closed."""

from __future__ import annotations

import pytest

from wsideid.checks import Check, CheckStatus, StopChecks, VerifyContext, VerifyReport, run_checks


def _status(rep: VerifyReport) -> dict[str, str]:
    return {c.name: c.status.value for c in rep.checks}


def test_a_check_nobody_ran_fails_closed():
    rep = VerifyReport({Check.VALIDATOR: "no validator"})
    rep.record(Check.REPARSE, True, "parses")
    assert not rep.ok
    rows = {c.check: c for c in rep.checks}
    assert rows[Check.VALIDATOR].status is CheckStatus.NOT_APPLICABLE and rows[Check.VALIDATOR].detail == "no validator"
    assert rows[Check.ROLES].status is CheckStatus.FAILED and "not run by the driver" in rows[Check.ROLES].detail


def test_after_a_failure_the_rest_is_not_run():
    rep = VerifyReport()
    rep.record(Check.REPARSE, False, "does not parse")
    assert [c.name for c in rep.failures()] == ["reparse"]
    assert all(c.status is CheckStatus.NOT_RUN and c.detail == "not run: reparse failed"
               for c in rep.checks if c.check is not Check.REPARSE)


def test_rows_are_the_vocabulary_in_order():
    rep = VerifyReport()
    for c in reversed(list(Check)):
        rep.record(c, True, "fine")
    assert [c.check for c in rep.checks] == list(Check) and rep.ok


def test_parts_make_one_row_failures_first():
    rep = VerifyReport()
    rep.record(Check.READER, True, "2 levels", part="wsidicom")
    rep.record(Check.READER, False, "cannot open", part="openslide")
    row = rep.result(Check.READER)
    assert row.status is CheckStatus.FAILED and row.detail == "openslide: cannot open; wsidicom: 2 levels"


def test_a_later_result_replaces_not_applicable():
    rep = VerifyReport({Check.OUTPUT_HASH: "only with --verify full"})
    rep.record(Check.OUTPUT_HASH, False, "differs")
    rep.not_applicable(Check.OUTPUT_HASH, "too late")  # a result is never hidden again
    assert rep.result(Check.OUTPUT_HASH).status is CheckStatus.FAILED


def test_not_run_for_a_missing_tool_refuses_the_slide():
    rep2 = VerifyReport()
    rep2.not_run(Check.VALIDATOR, "dciodvfy is not installed")
    for c in Check:
        if c is not Check.VALIDATOR:
            rep2.record(c, True)
    row = rep2.result(Check.VALIDATOR)
    assert not rep2.ok and not row.ok and not row.passed and row.status is CheckStatus.NOT_RUN


def test_run_checks_times_each_step_and_stops():
    ran = []

    def parse(ctx):
        ran.append("reparse")
        ctx.report.record(Check.REPARSE, False, "bad")
        raise StopChecks

    def roles(ctx):  # never reached
        ran.append("roles")

    ctx = VerifyContext(VerifyReport(), False, ())
    rep = run_checks(ctx, [(Check.REPARSE, parse), (Check.ROLES, roles)])
    assert ran == ["reparse"]
    assert rep.result(Check.REPARSE).seconds is not None and rep.result(Check.ROLES).seconds is None
    assert _status(rep)["roles"] == "not-run"


def test_every_check_has_a_meaning():
    assert all(c.meaning for c in Check)


@pytest.mark.parametrize("order", ["not-run first", "passed part first"])
def test_a_passed_part_never_hides_what_could_not_run(order):
    """A row whose whole check could not run stays not-run whatever part of it passed, in either
    order (the report ranked passed above not-run and let a part erase the not-run entry)."""
    rep = VerifyReport()
    if order == "not-run first":
        rep.not_run(Check.VALIDATOR, "dciodvfy is not installed")
        rep.record(Check.VALIDATOR, True, "source errors read", part="source")
    else:
        rep.record(Check.VALIDATOR, True, "source errors read", part="source")
        rep.not_run(Check.VALIDATOR, "dciodvfy is not installed")
    row = rep.result(Check.VALIDATOR)
    assert row.status is CheckStatus.NOT_RUN and not row.ok and "not installed" in row.detail


def test_a_later_whole_result_replaces_not_run():
    """A later stage that runs the whole check (hashing) replaces the verifier's not-run."""
    rep = VerifyReport()
    rep.not_run(Check.OUTPUT_HASH, "hashed after verification")
    rep.record(Check.OUTPUT_HASH, True, "equal")
    assert rep.result(Check.OUTPUT_HASH).status is CheckStatus.PASSED


def test_architecture_doc_tables_every_check_in_order():
    """The per-driver table a reader trusts is the vocabulary the code reports."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = text.split("## Verification: named checks", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `([a-z-]+)` \|", section, re.M) == [c.value for c in Check]


def test_a_part_can_be_not_applicable_and_says_so():
    """One reader that does not support the slide is a named not-applicable part, never a passed
    part with a note; the row's status comes from the parts that ran."""
    rep = VerifyReport()
    rep.not_applicable(Check.READER, "OpenSlide reads no JPEG-LS", part="openslide")
    assert rep.result(Check.READER).status is CheckStatus.NOT_APPLICABLE
    rep.record(Check.READER, True, "1 level(s)", part="wsidicom")
    row = rep.result(Check.READER)
    assert row.status is CheckStatus.PASSED
    assert row.detail == "openslide: not applicable: OpenSlide reads no JPEG-LS; wsidicom: 1 level(s)"
    rep.record(Check.READER, False, "cannot open the output", part="openslide")  # it ran after all: replaces
    row = rep.result(Check.READER)
    assert row.status is CheckStatus.FAILED and "not applicable" not in row.detail
