"""Long fuzz run by hand: the harness of tests/fuzz with fresh random cases for a time budget.

    .venv/bin/python bench/fuzz_long.py --minutes 30 [--seed N] [--crashers DIR] [--dicom]

``--dicom`` fuzzes the DICOM pipeline instead (tests/fuzz/dicom.py: hostile
lengths, VRs, truncation, transfer syntaxes, deep nesting, broken
encapsulation, private elements); its crashers go to DICOM_CRASHERS.

Each violation is printed once per distinct message with a one-line
reproducer ``(seed name, ops)`` and saved under --crashers; paste it into
CRASHERS in tests/test_robust_fuzz.py once the bug is fixed. Cases run
in-process under a SIGALRM time limit (a hang is a violation). Memory is
capped for the whole run with RLIMIT_AS (--max-gb), so a parse that
allocates without bound shows up as a violation rather than swapping.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz.harness import N_OPS, Violation, describe, mutate, run_case  # noqa: E402
from fuzz.seeds import all_seeds  # noqa: E402
from fuzz import dicom as dfuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-ops", type=int, default=5)
    ap.add_argument("--max-gb", type=float, default=4)
    ap.add_argument("--dicom", action="store_true", help="fuzz DICOM seeds instead of TIFF-family ones")
    ap.add_argument("--crashers", default=str(Path(tempfile.gettempdir()) / "wsideid-crashers"))
    args = ap.parse_args()
    limit = int(args.max_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    seeds = dfuzz.all_dicom_seeds() if args.dicom else all_seeds()
    n_ops = dfuzz.N_DICOM_OPS if args.dicom else N_OPS
    mut = dfuzz.mutate if args.dicom else mutate
    check = dfuzz.check_published_dicom if args.dicom else None
    work = Path(tempfile.mkdtemp(prefix="wsideid-fuzz-"))
    crashdir = Path(args.crashers)
    crashdir.mkdir(parents=True, exist_ok=True)
    outcomes: collections.Counter[str] = collections.Counter()
    bugs: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + args.minutes * 60
    n = 0
    print(f"rng seed {seed}; {len(seeds)} seed slides: {', '.join(s.name for s in seeds)}")
    while time.monotonic() < end:
        s = rng.choice(seeds)
        ops = [(rng.randrange(n_ops), rng.randrange(1 << 16), rng.randrange(1 << 16))
               for _ in range(rng.randint(1, args.max_ops))]
        n += 1
        try:
            o = run_case(mut(s, ops), work, "input" + s.suffix, s.planted,
                         verify=rng.choice(["sample", "full"]), check=check)
            outcomes[o.kind] += 1
        except (Violation, MemoryError) as v:
            key = (str(v).splitlines() or [type(v).__name__])[0][:160]
            if not bugs[key]:
                print(f"VIOLATION {describe(s.name, ops)}\n  {key}", flush=True)
                (crashdir / f"crash-{len(bugs)}.json").write_text(json.dumps(
                    {"seed": s.name, "ops": ops, "message": str(v)[:4000]}, indent=1))
            bugs[key] += 1
        if n % 500 == 0:
            print(f"{n} cases, {dict(outcomes)}, {len(bugs)} distinct violations", flush=True)
    print(f"done: {n} cases, {dict(outcomes)}, {len(bugs)} distinct violations")
    for k, v in bugs.most_common():
        print(f"  {v:5d}  {k}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
