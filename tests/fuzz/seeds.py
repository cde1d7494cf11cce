"""The seed corpus: real slides from ../shared/testdata (when present) and synthetic slides with planted PHI."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from .harness import REAL_SEEDS, TESTDATA, Seed, load_seed


def _removed_values(path: Path) -> list[str]:
    """Values the unmutated slide's plan removes: they must not reach any output of a mutant either."""
    from wsideid.pipeline import inspect
    plan = inspect(path)
    return sorted({v for v in plan.removed_values() if len(v) >= 6 and not (v.startswith("<") and v.endswith(">"))})


@functools.lru_cache(maxsize=None)
def synthetic_seeds() -> tuple[Seed, ...]:
    from wsideid.synth import PLANTED, make_generic_tiff, make_ndpi, make_svs
    folder = Path(tempfile.mkdtemp(prefix="wsideid-fuzz-seeds-"))
    # small slides: many cases per second, same structure as the full-size ones
    paths = [make_svs(str(folder / "synth.svs"), 512, 512).path,
             make_ndpi(str(folder / "synth.ndpi"), 512, 384).path,
             make_generic_tiff(str(folder / "synth.tiff"), 512, 384).path]
    seeds = tuple(load_seed(p, PLANTED) for p in paths)
    for p in paths:
        os.unlink(p)
    os.rmdir(folder)
    return seeds


@functools.lru_cache(maxsize=None)
def real_seeds() -> tuple[Seed, ...]:
    out = []
    for rel in REAL_SEEDS:
        p = TESTDATA / rel
        if p.exists():
            out.append(load_seed(p, _removed_values(p)))
    return tuple(out)


def all_seeds() -> tuple[Seed, ...]:
    return synthetic_seeds() + real_seeds()
