"""The Aperio SVS driver (``wsideid.tiff_family.vendors.aperio``): detection, a verified round trip, corrupted variants."""

from driver_cases import standard_cases

from wsideid.synth import make_svs

NAME = "aperio"

sample, test_detected_by_content, test_round_trip, test_corrupted_variants_are_refused_or_verified = \
    standard_cases(NAME, make_svs, "s.svs")
