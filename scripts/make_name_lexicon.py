"""Regenerate the census name lists shipped in wsideid/detect/lexicon/.

Source: the 1990 US Census name files (public domain, U.S. Government
work) as shipped by the PyPI package ``names`` 0.3.0 (MIT code; its
README states the dist.* files are public domain, derived from the 1990
Census): dist.male.first, dist.female.first, dist.all.last. Columns: name,
percent of the population, cumulative percent, rank.

Kept, with the census share in percent (the larger of the two sexes for
a given name): every given name (5,163 distinct), and every surname the
census could give a non-zero share at its own resolution (>= 0.001 %,
about one person in 100,000: 18,839 of 88,799). Rarer surnames that are
also everyday words (Second, Touch, Needle) are below what the census
could measure; a rare surname that is no English word stays a name
candidate anyway (detect/name_lexicon.py: unknown words never excuse a
pair, and the share decides only for words that are also English).

Usage: pip download --no-deps names==0.3.0 && tar xzf names-0.3.0.tar.gz
       python scripts/make_name_lexicon.py names-0.3.0/names
"""
from __future__ import annotations

import argparse
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "wsideid" / "detect" / "lexicon"
MIN_SURNAME_PERCENT = 0.001


def _rows(path: Path) -> list[tuple[str, float]]:
    return [(p[0], float(p[1])) for p in (ln.split() for ln in path.read_text().splitlines()) if len(p) >= 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("census_dir", type=Path, help="folder holding dist.male.first, dist.female.first, dist.all.last")
    a = ap.parse_args()
    given: dict[str, float] = {}
    for f in ("dist.male.first", "dist.female.first"):
        for n, pct in _rows(a.census_dir / f):
            given[n] = max(pct, given.get(n, 0.0))
    surnames = {n: pct for n, pct in _rows(a.census_dir / "dist.all.last") if pct >= MIN_SURNAME_PERCENT}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, table in (("census1990_given.txt", given), ("census1990_surnames.txt", surnames)):
        (OUT / name).write_text("".join(f"{n} {pct:.3f}\n" for n, pct in sorted(table.items())))
    print(f"{len(given)} given names, {len(surnames)} surnames written to {OUT}")


if __name__ == "__main__":
    main()
