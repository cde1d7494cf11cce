"""The Hamamatsu NDPI driver (``wsideid.tiff_family.vendors.hamamatsu``): detection, a verified round trip, corrupted variants."""

from __future__ import annotations

from pathlib import Path

import pytest
from driver_cases import check_corrupted, check_detected, check_round_trip

from wsideid.synth import make_ndpi

NAME = "hamamatsu"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_ndpi(str(tmp_path_factory.mktemp("ndpi") / "s.ndpi"))


def test_detected_by_content(sample):
    check_detected(Path(sample.path), NAME)


def test_round_trip(sample, tmp_path):
    check_round_trip(Path(sample.path), NAME, sample.planted, tmp_path)


def test_corrupted_variants_are_refused_or_verified(sample, tmp_path):
    check_corrupted(Path(sample.path), tmp_path, ("truncated-half", "truncated-header", "empty", "magic-lost"))
