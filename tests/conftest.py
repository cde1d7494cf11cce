"""Shared fixtures: synthetic slides with planted PHI made by wsideid.synth.
Real slides come through tests/realdata.py (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    from wsideid.synth import make_all
    d = tmp_path_factory.mktemp("synth")
    make_all(str(d))
    return d


@pytest.fixture(scope="session")
def synth_slides(synth_dir) -> dict[str, Path]:
    return {"aperio": synth_dir / "synthetic-aperio.svs", "hamamatsu": synth_dir / "synthetic-hamamatsu.ndpi",
            "generic-tiff": synth_dir / "synthetic-generic.tiff"}
