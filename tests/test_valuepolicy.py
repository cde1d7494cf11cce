"""The value policy: a kept value proves its type or pattern, or it is removed."""

from __future__ import annotations

import pytest

from wsideid.dates import DatePolicy
from wsideid.errors import ProfileError
from wsideid.model import Field, ImageInfo, Inventory, ValueKind
from wsideid.profiles import PlanOptions, load_profile, make_plan
from wsideid.valuepolicy import ValueType, check, check_time, control_free, parse_spec

REMOVE_DATES = DatePolicy("remove")


def _f(value, kind=ValueKind.TEXT, key="description:X", tag=None):
    return Field("ifd[0]/X", key, value, ifd=0, tag=tag, kind=kind)


def _spec(action="keep", **kw):
    return parse_spec(kw, action, "test.X")


@pytest.mark.parametrize("vtype,good,bad", [
    ("integer", ["20", "-3", "+7", "0"], ["20 DOE^JANE", "20.0", "2e3", "", " 20", "20\0DOE", "٢٠"]),
    ("decimal", ["0.4990", "-0.000424", "20", "1e-3", ".5"], ["0.4990\0DOE^JANE", "0.49 90", "nan", "inf", "0x10",
                                                             "0.4990\rPatientName=X", "1,5"]),
    ("number", ["40.0", "-1.0"], ["forty"]),
    ("rational", ["(43826, 1)", "(10000000, 499)", "300"], ["43826/1", "(1, 2) DOE", "(a, b)", "(1, 2),(3, 4)"]),
    ("numbers", ["8,8,8", "0,255,128,255,128,255", "12794612,-192118", "(0, 1),(255, 1)", "35.16"],
     ["8,8,DOE", "1,,2", "1, 2", "68,279,1256,685\n"]),
])
def test_types_parse_wholly(vtype, good, bad):
    spec = _spec(type=vtype)
    for v in good:
        assert check(_f(v), spec, REMOVE_DATES).ok, v
    for v in bad:
        assert not check(_f(v), spec, REMOVE_DATES).ok, v


def test_range_is_enforced_on_every_number():
    spec = _spec(type="numbers", min=1, max=4)
    assert check(_f("2,2"), spec, REMOVE_DATES).ok
    assert not check(_f("2,5"), spec, REMOVE_DATES).ok
    assert not check(_f("0"), _spec(type="decimal", min=0.1), REMOVE_DATES).ok
    assert not check(_f("(1, 0)"), _spec(type="rational", min=0), REMOVE_DATES).ok  # division by zero fails


def test_enum_compares_whole_values():
    spec = _spec(type="enum", values=["Hamamatsu"])
    assert check(_f("Hamamatsu"), spec, REMOVE_DATES).ok
    for v in ("Hamamatsu Jane Doe", "hamamatsu", "Hamamatsu\0Jane"):
        assert not check(_f(v), spec, REMOVE_DATES).ok
    assert check(_f("2"), _spec(type="enum", values=[1, 2]), REMOVE_DATES).ok


def test_pattern_fullmatch_and_controls():
    spec = _spec(pattern=r"C\d{4,5}(-\d{2})?")
    assert check(_f("C9600-12"), spec, REMOVE_DATES).ok
    for v in ("C9600-12\rPatientName=DOE^JANE", "C٩٦٠٠-12", "C9600-12 DOE", "xC9600-12", "C9600-12\n",
              "C9600-12\u200b"):
        v_ok = check(_f(v), spec, REMOVE_DATES)
        assert not v_ok.ok and "failed pattern" in v_ok.note


def test_control_characters_are_category_c():
    assert control_free("NDP.scan 2.5.89")
    for c in ("\0", "\r", "\n", "\t", "\x1f", "\x7f", "\x85", "\u200b", "\ufeff", "\ue000"):
        assert not control_free(f"a{c}b"), repr(c)


def test_bare_keep_keeps_only_container_numbers():
    assert check(_f("7", ValueKind.NUMBER), None, REMOVE_DATES).ok
    assert check(_f("<608 values>", ValueKind.NUMBER), None, REMOVE_DATES).ok
    for kind in (ValueKind.TEXT, ValueKind.IDENTIFIER, ValueKind.BINARY):
        v = check(_f("Jane Doe", kind), None, REMOVE_DATES)
        assert not v.ok and "needs a type or a pattern" in v.note


def test_number_summary_only_for_numeric_fields():
    spec = _spec(type="numbers")
    assert check(_f("<608 values>", ValueKind.NUMBER), spec, REMOVE_DATES).ok
    assert not check(_f("<608 values>", ValueKind.TEXT), spec, REMOVE_DATES).ok


def test_date_group_gets_the_date_policy_and_versions_are_not_dates():
    spec = _spec("text", pattern=r"Aperio Image Library v\d+(\.\d+)*( (?P<date>\d{4}-\d{2}-\d{2}))?",
                 format="%Y-%m-%d")
    v = check(_f("Aperio Image Library v12.0.5 2024-03-14"), spec, REMOVE_DATES)
    assert v.ok and v.value == "Aperio Image Library v12.0.5" and v.action == "text"
    v = check(_f("Aperio Image Library v12.0.5 2024-03-14"), spec, DatePolicy("year"))
    assert v.value == "Aperio Image Library v12.0.5 2024-01-01"
    v = check(_f("Aperio Image Library v12.0.5"), spec, REMOVE_DATES)
    assert v.ok and v.action is None
    assert not check(_f("Aperio Image Library v12.0.5 on PATH-PC-7"), spec, REMOVE_DATES).ok
    ndp = _spec(pattern=r"NDP\.scan \d{1,3}(\.\d{1,5}){0,3}")
    v = check(_f("NDP.scan 2.5.89"), ndp, REMOVE_DATES)
    assert v.ok and v.action is None  # kept unmangled: a version, not a date


def test_structured_types_belong_to_their_tag():
    jt = _spec(type="jpeg-tables")
    assert check(_f("<289 bytes>", ValueKind.BINARY, "tags:JPEGTables", 347), jt, REMOVE_DATES).ok
    assert not check(_f("<289 bytes>", ValueKind.BINARY, "tags:XMP", 700), jt, REMOVE_DATES).ok
    icc = _spec(type="icc-profile")
    f = _f("<3 bytes>", ValueKind.BINARY, "tags:ICCProfile", 34675)
    f.raw = b"abc"
    v = check(f, icc, REMOVE_DATES)
    assert not v.ok and "does not parse" in v.note
    import wsideid.tiff_family.vendors.aperio  # noqa: F401 - the Aperio driver registers its header checker
    hdr = _spec(type="aperio-header")
    assert not check(_f("Aperio Image Library v1", key="description:Title"), hdr, REMOVE_DATES).ok


def test_time_action_values():
    assert check_time("10:22:33") and check_time("9:59") and check_time("23:59:59.5")
    for v in ("10:22:33 DOE", "10:22:33\0DOE", "25:00:00", "10h22"):
        assert not check_time(v)


@pytest.mark.parametrize("spec,match", [
    ({"type": "integr"}, "unknown type"),
    ({"pattern": "C(\\d{4"}, "bad pattern"),
    ({"pattern": "[A-Za-z ]+"}, "admits free text"),
    ({"pattern": ".*"}, "admits free text"),
    ({"pattern": "[^|]{1,64}"}, "admits free text"),
    ({"pattern": "C\\d+|\\s"}, "control characters"),
    ({"type": "integer", "pattern": "\\d+"}, "not both"),
    ({"type": "decimal", "min": "0"}, "min must be a number"),
    ({"pattern": "C\\d+", "min": 0}, "only for numeric types"),
    ({"type": "integer", "values": [1]}, "only for type"),
    ({"type": "enum"}, "needs values"),
    ({"type": "integer", "else": "keep"}, "else must be"),
    ({"type": "integer", "else": "replace"}, "needs a value"),
    ({"type": "integer", "else": "replace", "value": "unknown"}, "fails the entry's own check"),
    ({"pattern": "v(?P<date>\\d{8})"}, "needs action"),
])
def test_spec_mistakes_are_profile_errors(spec, match):
    with pytest.raises(ProfileError, match=match):
        parse_spec(spec, "keep", "test.X")


def test_text_needs_a_pattern_and_date_group_needs_a_format():
    with pytest.raises(ProfileError, match="text needs a pattern"):
        parse_spec({}, "text", "test.X")
    with pytest.raises(ProfileError, match="needs a format"):
        parse_spec({"pattern": "v1( (?P<date>\\d{8}))?"}, "text", "test.X")


def test_neutral_replacement_on_failure():
    spec = _spec(pattern=r"NDP\.scan \d+(\.\d+)*", **{"else": "replace", "value": "NDP.scan 0"})
    assert spec.on_fail == "replace" and spec.neutral == "NDP.scan 0"
    assert ValueType.INTEGER.value == "integer"


# --- the profile syntax ---------------------------------------------------------

def _inv(*fields):
    return Inventory("aperio", "x.svs", [ImageInfo(0, "level", 10, 10, "jpeg", True, 1)],
                     [Field(f"ifd[0]/ImageDescription/{k}", f"description:{k}", v, ifd=0, tag=270, subkey=k)
                      for k, v in fields])


def _override(tmp_path, text):
    p = tmp_path / "o.toml"
    p.write_text(text)
    return load_profile("aperio", p)


@pytest.mark.parametrize("text,match", [
    ('[description]\nMPP = "text"\n', "text needs a pattern"),
    ('[description]\nMPP = { action = "keep", type = "float" }\n', "unknown type"),
    ("[description]\nSoftware = { action = \"keep\", pattern = '(unclosed' }\n", "bad pattern"),
    ('[description]\n"Note*" = { action = "keep", type = "integer" }\n', "must be spelled out"),
    ('[description]\nMPP = { action = "remove", type = "decimal" }\n', "only apply to keep and text"),
    ('[description]\nMPP = { action = "keep", type = "decimal", colour = "red" }\n', "unknown keys"),
])
def test_bad_value_specs_fail_at_load(tmp_path, text, match):
    with pytest.raises(ProfileError, match=match):
        _override(tmp_path, text)


def test_override_with_a_type_and_a_pattern(tmp_path):
    prof = _override(tmp_path, "[description]\nMPP = { action = \"keep\", type = \"decimal\", max = 1 }\n"
                     "Scanner = { action = \"keep\", pattern = 'SS\\d{4}', else = \"replace\", value = \"SS0000\" }\n"
                     "\"Lane#\" = { action = \"keep\", type = \"integer\" }\n")
    plan = make_plan(_inv(("MPP", "0.25"), ("Scanner", "SS1234"), ("Lane7", "3"), ("MPP", "4"),
                          ("Scanner", "Jane's scanner"), ("LaneX", "3")), prof, PlanOptions(DatePolicy()))
    got = [(d.action, d.new_value) for d in plan.fields]
    assert got[:3] == [("keep", "0.25"), ("keep", "SS1234"), ("keep", "3")]
    assert got[3] == ("remove", None) and "value failed decimal" in plan.fields[3].rule
    assert got[4] == ("replace", "SS0000") and plan.fields[4].rule.endswith("replaced")
    assert plan.fields[5].unknown  # "#" is digits only


def test_failed_values_are_recorded_without_the_value():
    plan = make_plan(_inv(("MPP", "0.4990\0DOE^JANE"), ("AppMag", "20 DOE^JANE")), load_profile("aperio"),
                     PlanOptions(DatePolicy()))
    for d in plan.fields:
        assert d.action == "remove" and "value failed decimal" in d.rule and "DOE" not in d.rule
    assert "control character" in plan.fields[0].rule


@pytest.mark.parametrize("fmt", ["aperio", "hamamatsu", "generic-tiff"])
def test_every_shipped_keep_declares_a_type_or_pattern(fmt):
    prof = load_profile(fmt)
    for section, table in prof.data.items():
        if section in ("profile", "defaults", "images") or not isinstance(table, dict):
            continue
        for key in table:
            rule, _ = prof.rule(section, key.replace("#", "1"))
            if rule.action in ("keep", "text"):
                assert rule.spec is not None and (rule.spec.type or rule.spec.pattern), f"{section}.{key}"


# --- field kinds from the TIFF inventory ----------------------------------------

def test_inventory_sets_field_kinds(synth_slides):
    from wsideid.pipeline import inspect
    kinds = {}
    for fmt in ("aperio", "hamamatsu"):
        for d in inspect(synth_slides[fmt]).fields:
            kinds.setdefault(d.field.key, d.field.kind)
    assert kinds["tags:ImageWidth"] == ValueKind.NUMBER and kinds["tags:XResolution"] == ValueKind.NUMBER
    assert kinds["tags:McuStarts"] == ValueKind.NUMBER and kinds["tags:Magnification"] == ValueKind.NUMBER
    assert kinds["tags:XMP"] == ValueKind.TEXT  # BYTE tag that reads as text: text, so a needle when removed
    assert kinds["tags:Software"] == ValueKind.TEXT and kinds["description:MPP"] == ValueKind.TEXT
    for key in ("description:Barcode", "description:Filename", "description:User", "description:Title",
                "description:ScanScope ID", "tags:SlideLabel", "tags:ScannerSerialNumber", "tags:Barcode",
                "tags:DocumentName", "tags:Artist", "tags:HostComputer", "properties:NDP.S/N",
                "properties:;SerialNumber"):
        assert kinds[key] == ValueKind.IDENTIFIER, key


def test_binary_tags_are_binary():
    from tests.realdata import real
    from wsideid.pipeline import inspect
    plan = inspect(real("svs/tcga-cr-7395-01a-01-ts1.svs"))
    kinds = {d.field.key: d.field.kind for d in plan.fields}
    assert kinds["tags:JPEGTables"] == kinds["tags:ICCProfile"] == ValueKind.BINARY
    icc = next(d for d in plan.fields if d.field.key == "tags:ICCProfile")
    # the sRGB profile keeps its size and colour science; only the header's identity fields are neutralised
    assert icc.action == "replace" and len(icc.field.raw) == len(icc.new_value) == 3144


def test_real_slides_keep_their_legitimate_values():
    """No false refusal of values: the real slides' software, model and optics survive unchanged."""
    from tests.realdata import real
    from wsideid.pipeline import inspect
    ndpi = {d.field.key: d for d in inspect(real("ndpi/test3-TRITC-2-560.ndpi")).fields if d.field.ifd == 0}
    for key, value in (("tags:Software", "NDP.scan 2.5.89"), ("tags:Model", "C9600-12"), ("tags:Make", "Hamamatsu"),
                       ("tags:Fluorescence", "TRITC 2 (560)"), ("properties:Product", "C9600-12"),
                       ("tags:Magnification", "40.0"), ("properties:roi.barcode.macro", "948,281,1253,682")):
        assert (ndpi[key].action, ndpi[key].field.value) == ("keep", value), key
    svs = [d for d in inspect(real("svs/CMU-1-Small-Region.svs")).fields if d.field.ifd in (0, 1)]
    assert all(d.action == "keep" for d in svs if d.field.key.startswith("tags:"))
    assert all(d.action == "keep" for d in svs if d.field.key in (
        "description:@header", "description:MPP", "description:AppMag", "description:Left"))


def test_typed_values_hold_only_number_characters():
    """Property: whatever text comes in, what a numeric type keeps is made of number characters only."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    specs = [_spec(type=t) for t in ("integer", "decimal", "rational", "numbers")]
    alphabet = st.sampled_from(list("0123456789.,-+eE() ") + ["\0", "\r", "\n", "D", "O", "٣", "\u200b", "J"])

    @settings(max_examples=500, deadline=None)
    @given(st.text(alphabet, max_size=30))
    def prop(value):
        for spec in specs:
            if check(_f(value), spec, REMOVE_DATES).ok:
                assert re.fullmatch(r"[0-9.,+\-eE() ]+", value), (spec.type, value)
    prop()
