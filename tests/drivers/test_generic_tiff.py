"""The generic tiled TIFF driver (``wsideid.tiff_family.vendors.generic_tiff``): detection, a verified round trip, corrupted variants."""

from __future__ import annotations

from pathlib import Path

import pytest
from driver_cases import check_corrupted, check_detected, check_round_trip

from wsideid.synth import make_generic_tiff

NAME = "generic-tiff"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_generic_tiff(str(tmp_path_factory.mktemp("tiff") / "s.tiff"))


def test_detected_by_content(sample):
    check_detected(Path(sample.path), NAME)


def test_round_trip(sample, tmp_path):
    check_round_trip(Path(sample.path), NAME, sample.planted, tmp_path)


def test_corrupted_variants_are_refused_or_verified(sample, tmp_path):
    check_corrupted(Path(sample.path), tmp_path, ("truncated-half", "truncated-header", "empty", "magic-lost"))
