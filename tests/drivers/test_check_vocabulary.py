"""Every driver in the registry reports the same check names (``wsideid.checks.Check``), in the same
order, with one shape, so the audit, ``wsideid verify`` and the QC page list the same rows for every
slide; a check that does not apply to a format says so with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from driver_cases import options, sample_makers

from wsideid import cli
from wsideid.checks import Check
from wsideid.dicom import dciodvfy
from wsideid.pipeline import deidentify
from wsideid.registry import DRIVERS, names

VOCABULARY = [c.value for c in Check]
ROW_KEYS = {"check", "status", "ok", "detail", "seconds"}


def test_every_driver_has_a_sample():
    assert sorted(sample_makers()) == sorted(names())


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda d: d.name)
def test_audit_lists_the_vocabulary_in_order(driver, tmp_path):
    sample = sample_makers()[driver.name](tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(sample, out, options())
    assert res.status == "published" and res.format == driver.name
    rows = json.loads(Path(res.audit_path).read_text())["verification"]
    assert [r["check"] for r in rows] == VOCABULARY
    assert all(set(r) == ROW_KEYS for r in rows)
    for r in rows:
        allowed = {"passed", "not-applicable"}
        if r["check"] == Check.VALIDATOR.value and driver.name == "dicom" and not dciodvfy.available():
            allowed.add("not-run")  # the one optional tool: said as such, never passed
        assert r["status"] in allowed, r
        assert r["ok"] is True and r["detail"], r  # a not-applicable row gives its reason
        assert (r["seconds"] is None) == (r["status"] == "not-applicable"), r
    # the checks every format has run everywhere
    for name in ("reparse", "plan-held", "no-unknown-fields", "roles", "image-data", "residual-needles", "reader"):
        assert next(r for r in rows if r["check"] == name)["status"] == "passed", name


def test_verify_command_prints_the_same_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSIDEID_SECRET", "check-vocabulary-secret")
    sample = sample_makers()["aperio"](tmp_path)
    out = tmp_path / "out"
    assert cli.main(["deid", str(sample), "-o", str(out), "--new-id", "R-1", "--detect", "off", "--json"]) == 0
    published = json.loads(capsys.readouterr().out)["output"]
    assert cli.main(["verify", str(sample), published, "--new-id", "R-1", "--json"]) == 0
    assert [c["check"] for c in json.loads(capsys.readouterr().out)["checks"]] == VOCABULARY
    assert cli.main(["verify", str(sample), published, "--new-id", "R-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1].rstrip(":") for ln in lines[:-1]] == VOCABULARY and lines[-1] == "verified"
