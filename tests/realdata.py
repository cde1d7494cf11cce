"""Where the real slides from other projects live (../shared/testdata)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# $WSIDEID_TESTDATA points elsewhere (a git worktree does not sit beside ../shared)
TESTDATA = Path(os.environ.get("WSIDEID_TESTDATA") or Path(__file__).resolve().parents[2] / "shared" / "testdata")

REAL_TIFF_SLIDES = {
    "svs/CMU-1-Small-Region.svs": "aperio",
    "svs/openslide-python_small.svs": "aperio",
    "svs/tcga-cr-7395-01a-01-ts1.svs": "aperio",
    "ndpi/test3-TRITC-2-560.ndpi": "hamamatsu",
    "tiff/openslide-python_boxes.tiff": "generic-tiff",
}


def real(rel: str) -> Path:
    p = TESTDATA / rel
    if not p.exists():
        pytest.skip(f"{rel} not available (../shared/testdata is absent)")
    return p
