"""Hostile files through the command line, as processes (tests/fuzz/hostile_cases.py).

Every format the project can make (SVS, NDPI, generic TIFF, BigTIFF, SubIFD pyramid, OME-TIFF,
QPTIFF, Philips, Ventana BIF, Leica SCN, Aperio J2K, MIRAX, DICOM series) is mutated at its
structures; each mutant runs ``wsideid deid`` (and ``inspect`` or ``scan``) in its own process
with a time limit and a 3 GB address-space limit, and must end in exit 2/3 with one
``wsideid: error:`` line and an empty OUTDIR, or a published output that verified and holds no
planted value; its peak RSS stays <= 100 MB and the input is unchanged (fuzz/proc.py).

The sample is fixed (seed below) so the suite is stable; ``bench/hostile_soak.py`` runs many
more cases with any seed. Every finding either run made is a regression test in
tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import pytest

from fuzz import formats, hostile_cases as hc
from fuzz.proc import Result, Runner, Violation, check_batch, check_deid, check_inspect, tree_hash

SEED = 20261202
PER_FORMAT = {"dicom": 0}  # DICOM mutants: test_robust_fuzz.py in-process, bench/hostile_soak.py as processes
DEFAULT_PER_FORMAT = 6


@pytest.fixture(scope="module", autouse=True)
def runner():
    r = Runner()
    yield r
    r.close()
    formats.cleanup()  # the seeds' temporary folder


@functools.lru_cache(maxsize=None)
def _cases(fmt: str) -> list[hc.Case]:
    return hc.format_cases(fmt, SEED, PER_FORMAT.get(fmt, DEFAULT_PER_FORMAT))


def _need(fmt: str) -> formats.FormatSeed:
    try:
        return formats.seed(fmt)
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_seed_publishes(runner, fmt, tmp_path):
    """The control: each unmutated seed publishes a verified, clean output (exit 0), so a
    mutant's refusal is the mutation's doing and the oracle accepts a good run."""
    s = _need(fmt)
    case = hc.Case(f"{fmt}:control", fmt, lambda folder: formats.copy_input(s, folder), s.needles, ("deid",))
    assert hc.run_case(runner, case, tmp_path / "w") == {"deid": "published"}


@pytest.mark.parametrize("fmt,k", [(f, k) for f in formats.FORMATS for k in range(PER_FORMAT.get(f, DEFAULT_PER_FORMAT))])
def test_mutant(runner, fmt, k, tmp_path):
    _need(fmt)
    cases = _cases(fmt)
    if k >= len(cases):
        pytest.skip("fewer mutations than the sample size")
    hc.run_case(runner, cases[k], tmp_path / "w")


FS_CASES = hc.filesystem_cases()


@pytest.mark.parametrize("case", FS_CASES, ids=[c.id for c in FS_CASES])
def test_filesystem_oddity(runner, case, tmp_path):
    hc.run_case(runner, case, tmp_path / "w")


def test_mutations_cover_every_structure():
    """The generators reach each structure they claim to (a mutation list that silently came out
    empty would make the suite pass for nothing)."""
    from fuzz import structural
    labels = {fmt: [label for label, _ in (structural.tiff_mutations(formats.seed(fmt).path, __import__("random").Random(1)))]
              for fmt in ("svs", "j2k", "ome", "bif", "scn", "philips", "qptiff", "subifd")}
    assert any(":no-EOI" in x for x in labels["svs"]) and any("DHT" in x for x in labels["svs"])
    assert any("rst-chaos" in x for x in labels["svs"]) and any("SOF0-65535x65535" in x for x in labels["svs"])
    assert sum("SIZ" in x for x in labels["j2k"]) >= 9 and any("SOT" in x for x in labels["j2k"])
    for fmt in ("ome", "bif", "scn", "philips", "qptiff"):
        assert any("billion-laughs" in x for x in labels[fmt]), fmt
        assert any("external-entity" in x for x in labels[fmt]), fmt
    assert any("subifd(330)" in x for x in labels["subifd"]) and any("next[0]" in x for x in labels["subifd"])
    assert any(x.startswith("truncate@") for x in labels["bif"])
    mrxs = [label for label, _ in structural.mrxs_mutations(formats.seed("mrxs").path, __import__("random").Random(1))]
    assert any(x.startswith("index@") for x in mrxs) and any(x.startswith("ini:") for x in mrxs)


# ------------------------------------------------------------------ batch and folder runs

def _hostile_inputs(folder: Path) -> dict[str, Path]:
    """A good slide beside bad ones, built from the cases above."""
    folder.mkdir(parents=True, exist_ok=True)
    picks = {"good": formats.copy_input(formats.seed("svs"), folder, "good")}
    for fmt, k in (("svs", 0), ("ndpi", 1), ("bif", 2), ("tiff", 3)):
        case = _cases(fmt)[k]
        built = case.build(folder / f"tmp-{fmt}")
        dest = folder / f"{fmt}-{k}{''.join(built.suffixes)}"
        built.rename(dest)
        os.rmdir(folder / f"tmp-{fmt}")
        picks[f"{fmt}-{k}"] = dest
    (folder / "empty.svs").write_bytes(b"")
    picks["empty"] = folder / "empty.svs"
    os.mkfifo(folder / "pipe.svs")
    picks["pipe"] = folder / "pipe.svs"
    (folder / "zero.ndpi").symlink_to("/dev/zero")
    picks["zero"] = folder / "zero.ndpi"
    return picks


def test_batch_manifest_with_hostile_rows(runner, tmp_path):
    picks = _hostile_inputs(tmp_path / "in")
    before = {k: tree_hash(p) for k, p in picks.items() if k not in ("pipe", "zero")}
    rows = [(f"in/{p.name}", f"R-{i}") for i, p in enumerate(picks.values())] + [("in/missing.svs", "R-99")]
    with open(tmp_path / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "new_id"])
        w.writerows(rows)
    out = tmp_path / "out"
    r = runner.run(["run", str(tmp_path / "m.csv"), "-o", str(out), "--detect", "off", "--no-report"], tmp_path,
                   timeout=300)
    status = check_batch(r, out, formats.planted("svs"), "run manifest")
    assert status["R-0"] == "published"
    assert {status.get(f"R-{i}") for i in (5, 6, 7)} <= {"failed", None}
    assert {k: tree_hash(p) for k, p in picks.items() if k not in ("pipe", "zero")} == before


def test_deid_folder_with_hostile_files(runner, tmp_path):
    """``deid FOLDER``: the good slide is published, every bad file fails on its own row."""
    picks = _hostile_inputs(tmp_path / "in")
    out = tmp_path / "out"
    r = runner.run(["deid", str(tmp_path / "in"), "-o", str(out), "--detect", "off"], tmp_path, timeout=300)
    status = check_batch(r, out, formats.planted("svs"), "deid FOLDER")
    assert list(status.values()).count("published") >= 1 and r.rc in (1, 2)
    assert picks["pipe"].exists()


# ------------------------------------------------------------------ the harness itself

def test_fork_server_agrees_with_a_fresh_process(runner, tmp_path):
    """The zygote's child behaves as ``python -m wsideid.cli`` does: same exit code and stderr."""
    fresh = Runner(fresh=True)
    try:
        for case in (_cases("svs")[0], _cases("mrxs")[1], FS_CASES[0]):
            src = case.build(tmp_path / case.id.replace(":", "_") / "in")
            a = runner.run(["inspect", str(src)], tmp_path)
            b = fresh.run(["inspect", str(src)], tmp_path)
            assert (a.rc, a.stderr) == (b.rc, b.stderr), case.id
            check_inspect(b, case.id)
    finally:
        fresh.close()


def _result(**kw) -> Result:
    base = dict(argv=[], rc=2, timed_out=False, maxrss_mb=50.0, seconds=0.1, stdout="",
                stderr="wsideid: error: broken\n")
    return Result(**{**base, **kw})


@pytest.mark.parametrize("bad", [dict(timed_out=True), dict(rc=-9), dict(rc=70), dict(maxrss_mb=140.0),
                                 dict(stderr="wsideid: error: a\nwsideid: error: b\n"),
                                 dict(stderr="Traceback (most recent call last):\n"), dict(rc=5), dict(stderr="")])
def test_oracle_refuses_each_broken_promise(bad, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    check_deid(_result(), out, (), "good")
    with pytest.raises(Violation):
        check_deid(_result(**bad), out, (), "bad")


def test_oracle_refuses_leftovers_and_leaks(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".wsideid-tmp-1").write_bytes(b"x")
    with pytest.raises(Violation, match="left"):
        check_deid(_result(), out, (), "leftover")
    (out / ".wsideid-tmp-1").unlink()
    (out / "R.svs").write_bytes(b"... Jane Doe ...")
    (out / "R.svs.audit.json").write_bytes(b"{}")
    with pytest.raises(Violation, match="holds"):
        check_deid(_result(rc=0, stderr=""), out, ("Jane Doe",), "leak")
    (out / "R.svs").write_bytes(b"clean")
    assert check_deid(_result(rc=0, stderr=""), out, ("Jane Doe",), "clean") == "published"


def test_a_fresh_run_reports_the_tools_own_peak_not_the_workers(tmp_path):
    """Linux keeps the RSS high-water mark across fork and exec: ``python -m wsideid.cli`` forked
    from a test worker that holds 600 MB reported 600 MB (it failed the suite's RSS check on a
    worker that had grown). The launcher forks it from a small process instead."""
    ballast = bytearray(600 << 20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # resident, not just reserved
    fresh = Runner(fresh=True)
    try:
        r = fresh.run(["inspect", str(tmp_path / "missing.svs")], tmp_path)
    finally:
        fresh.close()
    assert r.rc == 2 and r.maxrss_mb < 100, (r.rc, r.maxrss_mb, r.stderr)
    del ballast
