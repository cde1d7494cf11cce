"""The Aperio description header: rebuilt from tokens that each parse as their type."""

from __future__ import annotations

import pytest

from wsideid.dates import DatePolicy
from wsideid.model import Field, ImageInfo, Inventory
from wsideid.profiles import PlanOptions, load_profile, make_plan
from wsideid.tiff_family.vendors.aperio import parse_header

REAL_HEADERS = [  # as written by Aperio software (CMU-1, TCGA, GT450, ScanScope FS)
    "Aperio Image Library v11.2.1 \r\n46000x32914 [42673,5576 2220x2967] (240x240) JPEG/RGB Q=30;"
    "Aperio Image Library v10.0.51\r\n46920x33014 [0,100 46000x32914] (256x256) JPEG/RGB Q=30",
    "Aperio Image Library v11.2.1 \n2220x2967 -> 574x768 - ;Aperio Image Library v10.0.51\r\n"
    "46920x33014 [0,100 46000x32914] (256x256) JPEG/RGB Q=30",
    "Aperio Image Library v11.0.37\r\n4443x3567 (256x256) J2K/KDU Q=70",
    "Aperio Image Library v11.0.37\r\n4443x3567 (256x256) -> 2221x1783 J2K/KDU Q=70",
    "Aperio Image Library v11.2.1 \nlabel 387x463",
    "Aperio Image Library v11.2.1 \nmacro 1280x431",
    "Aperio Leica Biosystems GT450 v1.0.1\r\n150000x80000 [0,0 150000x80000] (256x256) JPEG/YCC Q=91",
    "Aperio Leica Biosystems GT450 DX v1.2.0\r\n150000x80000 [0,0 150000x80000] (256x256) JPEG/YCC Q=91",
    "Aperio Image Library vFS90 01\r\n159712x44759 [0,100 153271x44659] (256x256) JPEG/RGB Q=30",
    "Aperio Image Library v12.0.5\r\n2048x1536 [0,0 2048x1536] (256x256) J2K/YUV16 Q=70",
    "Aperio Image Library v12.0.5\r\n2048x1536 (256x256) RAW",
]


@pytest.mark.parametrize("header", REAL_HEADERS)
def test_real_headers_pass_unchanged(header):
    assert parse_header(header).clean == header and parse_header(header).dropped == []


@pytest.mark.parametrize("header,planted,clean", [
    ("Aperio Jane Doe MRN4455667 v1\r\n2220x2967 (240x240) JPEG/RGB Q=30", "Aperio Jane Doe MRN4455667 v1",
     "Aperio Image Library\r\n2220x2967 (240x240) JPEG/RGB Q=30"),
    ("Aperio Image Library v11.2.1\r\n2220x2967 DOE/JANE SMITH/JOHN 4455667", "DOE/JANE SMITH/JOHN 4455667",
     "Aperio Image Library v11.2.1\r\n2220x2967"),
    ("Aperio Image Library v11.2.1 on PATHPC-JDOE\r\n2220x2967 JPEG/RGB Q=30", "on PATHPC-JDOE",
     "Aperio Image Library v11.2.1\r\n2220x2967 JPEG/RGB Q=30"),
    ("Aperio Image Library v11.2.1\r\nS24-12345_DOE^JANE.svs 2220x2967 JPEG/RGB Q=30", "S24-12345_DOE^JANE.svs",
     "Aperio Image Library v11.2.1\r\n2220x2967 JPEG/RGB Q=30"),
    ("Aperio Image Library v11.2.1\r\n2220x2967 JPEG/RGB\rDOE^JANE Q=30", "JPEG/RGB\rDOE^JANE",
     "Aperio Image Library v11.2.1\r\n2220x2967 Q=30"),
    ("Aperio Image Library v11.2.1\0DOE\r\n2220x2967", "v11.2.1\0DOE",
     "Aperio Image Library\r\n2220x2967"),
    ("Aperio Image Library v11.2.1\r\n2220x2967 [0,100 DOE] JPEG/RGB", "DOE]",
     "Aperio Image Library v11.2.1\r\n2220x2967 [0,100 JPEG/RGB"),
    ("Jane Doe", "Jane Doe", "Aperio Image Library"),
])
def test_smuggled_text_is_dropped_and_recorded(header, planted, clean):
    got = parse_header(header)
    assert got.clean == clean
    for word in planted.replace("\r", " ").replace("\0", " ").split():
        if word not in ("on", "v1", "Aperio"):
            assert word not in got.clean, word
    assert planted.strip() in " ".join(got.dropped) or all(w in " ".join(got.dropped) for w in planted.split())


def test_codec_and_colour_come_from_the_enumeration():
    assert parse_header("Aperio Image Library v1.0\r\n10x10 JPEG/DOE").dropped == ["JPEG/DOE"]
    assert parse_header("Aperio Image Library v1.0\r\n10x10 Q=300x").dropped == ["Q=300x"]


def test_header_decision_in_a_plan_records_the_dropped_runs():
    header = "Aperio Jane Doe MRN4455667 v1\r\n2220x2967 DOE/JANE SMITH/JOHN 4455667"
    inv = Inventory("aperio", "x.svs", [ImageInfo(0, "level", 10, 10, "jpeg", True, 1)],
                    [Field("ifd[0]/ImageDescription/@header", "description:@header", header, ifd=0, tag=270,
                           subkey="@header")])
    plan = make_plan(inv, load_profile("aperio"), PlanOptions(DatePolicy()))
    d = plan.fields[0]
    assert d.action == "replace" and d.new_value == "Aperio Image Library\r\n2220x2967"
    assert d.removed_parts == ["Aperio Jane Doe MRN4455667 v1", "DOE/JANE SMITH/JOHN 4455667"]
    assert "Jane" not in d.rule and "2 run(s) dropped" in d.rule


def test_hostile_header_is_linear():
    import time
    t = time.perf_counter()
    parse_header("Aperio " * 50_000 + "x" * 10)
    assert time.perf_counter() - t < 5


def test_rebuilt_header_is_stable_and_only_typed_tokens():
    """Property: whatever the header, the rebuilt one parses to itself and every word is a typed token."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from wsideid.tiff_family.vendors.aperio import _SOFTWARE, _WORD, MINIMAL_HEADER
    words = st.sampled_from(["Aperio", "Image", "Library", "v11.2.1", "46000x32914", "[0,100", "46000x32914]",
                             "(256x256)", "JPEG/RGB", "J2K/KDU", "Q=30", "->", "-", "label", "DOE^JANE", "Jane",
                             "4455667", "DOE/JANE", "Q=3x", "\r", "\0", "vFS90", "01", "GT450", "DX"])
    seps = st.sampled_from([" ", "  ", "\r\n", "\n", ";"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(words, seps), max_size=24))
    def prop(parts):
        header = "".join(w + s for w, s in parts)
        got = parse_header(header)
        assert parse_header(got.clean).clean == got.clean
        rest = _SOFTWARE.sub(" ", got.clean.removeprefix(MINIMAL_HEADER + "\r\n").removeprefix(MINIMAL_HEADER))
        for word in re.split(r"\r\n|\n|;| +", rest):
            assert not word or _WORD.fullmatch(word), (header, got.clean, word)
        assert "DOE" not in got.clean and "Jane" not in got.clean and "4455667" not in got.clean
    prop()
