"""Hostile-file soak by hand: many more cases of tests/test_hostile_cli.py, as processes.

    .venv/bin/python bench/hostile_soak.py [--formats svs,ndpi,...,fs] [--per-format N] [--seed S]
                                           [--timeout 60] [--json FILE] [--family spells-text]

Builds every format's small seed (tests/fuzz/formats.py), samples N of its structural
mutations (tests/fuzz/structural.py; all of them without --per-format) with seed S, runs each
through ``wsideid deid`` / ``inspect`` / ``scan`` in a forked process (tests/fuzz/zygote.py)
under a time limit and a 3 GB address-space limit, and judges it by tests/fuzz/proc.py: exit
2/3 with one ``wsideid: error:`` line and an empty OUTDIR, or a verified clean publish; peak
RSS <= 100 MB; input unchanged. Prints every violation with its case id (rebuild it with
``hostile_cases.format_cases(fmt, S, None)``), outcome counts per format, peak RSS and the
slowest cases. ``--family`` runs one mutation category only; ``spells-text`` (round 5) is a
family of its own, not in the default sample: numeric tag values of the TIFF-family seeds
rewritten so their bytes spell a planted value (ASCII, or UTF-16 one character per SHORT).
``extreme`` and ``special`` (round 2, tests/fuzz/extreme.py; in the default sample too): sizes
declared over sparse holes, deflate bombs, FIFOs, /dev/zero, self-links, folders and empty files
in place of (or beside) each file of a slide.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz import formats, hostile_cases as hc  # noqa: E402
from fuzz.proc import Runner, Violation  # noqa: E402


class _Recording(Runner):
    """A runner that remembers the peak RSS and the slowest runs."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = (0.0, "")
        self.slow: list[tuple[float, str]] = []

    def run(self, argv, cwd, timeout=60, env=None):
        r = super().run(argv, cwd, timeout, env)
        if r.maxrss_mb > self.peak[0]:
            self.peak = (r.maxrss_mb, " ".join(argv[:1]) + " " + self.current)
        self.slow = sorted(self.slow + [(r.seconds, f"{argv[0]} {self.current}")], reverse=True)[:8]
        return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--formats", default=",".join(formats.FORMATS + ("fs",)))
    ap.add_argument("--per-format", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--family", default=None, help="only this mutation category (e.g. spells-text)")
    args = ap.parse_args()
    cases: list[hc.Case] = []
    for fmt in args.formats.split(","):
        if fmt == "fs":
            cases += [] if args.family else hc.filesystem_cases()
        else:
            cases += hc.format_cases(fmt, args.seed, args.per_format, args.family)
    print(f"{len(cases)} cases, seed {args.seed}", flush=True)
    runner = _Recording()
    work = Path(tempfile.mkdtemp(prefix="wsideid-soak-"))
    outcomes: Counter = Counter()
    violations: list[str] = []
    t0 = time.monotonic()
    try:
        for case in cases:
            runner.current = case.id
            try:
                for cmd, result in hc.run_case(runner, case, work / "w", args.timeout).items():
                    outcomes[(case.fmt, cmd, result)] += 1
            except Violation as v:
                violations.append(str(v))
                print("VIOLATION", v, flush=True)
    finally:
        runner.close()
        shutil.rmtree(work, ignore_errors=True)
        formats.cleanup()
    wall = time.monotonic() - t0
    print(f"\n{len(cases)} cases in {wall:.0f} s, {len(violations)} violations; "
          f"peak RSS {runner.peak[0]:.0f} MB ({runner.peak[1]})")
    for key in sorted(outcomes):
        print(f"  {'/'.join(key)}: {outcomes[key]}")
    print("slowest runs:")
    for secs, what in runner.slow:
        print(f"  {secs:6.1f} s  {what}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "cases": len(cases), "seconds": round(wall, 1), "violations": violations,
            "peak_rss_mb": round(runner.peak[0], 1), "outcomes": {"/".join(k): v for k, v in outcomes.items()}},
            indent=1))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
