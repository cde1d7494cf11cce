"""The DICOM WSI driver (``wsideid.drivers.dicom``): detection, a verified round trip, corrupted variants."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from driver_cases import check_corrupted, check_detected, check_round_trip

from wsideid.synth import PLANTED, SynthSlide

NAME = "dicom"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Made in a child process: importing wsidicomizer switches pydicom to its future behaviour
    for the whole process (``config.future_behavior()`` at import), which would change what
    later tests in this process see."""
    if importlib.util.find_spec("wsidicomizer") is None:  # not imported here: see above
        pytest.skip("wsidicomizer is not installed")
    folder = str(tmp_path_factory.mktemp("dicom") / "series")
    code = f"from wsideid.synth import make_dicom; make_dicom({folder!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
    return SynthSlide(folder, "dicom", PLANTED)


def test_detected_by_content(sample):
    check_detected(Path(sample.path), NAME)


def test_round_trip(sample, tmp_path):
    check_round_trip(Path(sample.path), NAME, sample.planted, tmp_path)


def test_corrupted_variants_are_refused_or_verified(sample, tmp_path):
    check_corrupted(Path(sample.path), tmp_path, ("truncated-half", "truncated-header"))
