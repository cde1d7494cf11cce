"""Shared fixtures: synthetic slides with planted PHI made by wsideid.synth.
Real slides come through tests/realdata.py (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """The PP-OCR worker's optimised model (``detect.ppocr.cache_dir``) goes to a folder of
    this run, not the user's cache: a test run neither reads nor leaves one there."""
    if "WSIDEID_MODEL_CACHE" not in os.environ:
        os.environ["WSIDEID_MODEL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield


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
