"""The generic tiled TIFF driver (``wsideid.tiff_family.vendors.generic_tiff``): detection, a verified round trip, corrupted variants."""

from driver_cases import standard_cases

from wsideid.synth import make_generic_tiff

NAME = "generic-tiff"

sample, test_detected_by_content, test_round_trip, test_corrupted_variants_are_refused_or_verified = \
    standard_cases(NAME, make_generic_tiff, "s.tiff")
