"""Shared fixtures: synthetic slides with planted PHI made by wsideid.synth.
Real slides come through tests/realdata.py (skipped when absent)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


CACHE_ENVS = ("WSIDEID_MODEL_CACHE", "WSIDEID_LEXICON_CACHE")


def pytest_configure(config) -> None:
    """The PP-OCR worker's optimised model (``detect.ppocr.cache_dir``) and the English word
    index (``detect.word_index``) go to a folder of this run, not the user's cache: a test
    run neither reads nor leaves one there. Set before collection, so that the environments
    test modules copy at import have it too; xdist's workers inherit the controller's folder
    (writes are atomic renames)."""
    config._wsideid_caches = []
    for env in CACHE_ENVS:
        if env not in os.environ:
            folder = tempfile.mkdtemp(prefix=f"{env.lower().replace('_', '-')}-")
            os.environ[env] = folder
            config._wsideid_caches.append((env, folder))


def pytest_unconfigure(config) -> None:
    for env, folder in getattr(config, "_wsideid_caches", []):
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(env, None)


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
