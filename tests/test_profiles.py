"""Profiles: shipped files validate, overrides merge, unknowns fail closed."""

from __future__ import annotations

import pytest

from wsideid.dates import DatePolicy
from wsideid.errors import ProfileError, StrictRefusal
from wsideid.model import Field, ImageInfo, Inventory
from wsideid.profiles import PlanOptions, load_profile, make_plan
from wsideid.registry import TIFF_DRIVERS


@pytest.mark.parametrize("fmt", [d.name for d in TIFF_DRIVERS])
def test_shipped_profiles_load(fmt):
    p = load_profile(fmt)
    assert p.format == fmt and len(p.sha256) == 64
    assert p.image_action("level") == "keep"
    assert p.unknown_action == "remove"


def _inv(*fields):
    return Inventory("aperio", "x.svs", [ImageInfo(0, "level", 10, 10, "jpeg", True, 1),
                                         ImageInfo(1, "label", 10, 10, "lzw", False, 1)],
                     [Field(f"ifd[0]/ImageDescription/{k}", f"description:{k}", v, ifd=0, tag=270, subkey=k)
                      for k, v in fields])


def test_plan_actions_and_unknowns():
    prof = load_profile("aperio")
    plan = make_plan(_inv(("MPP", "0.5"), ("Date", "12/29/09"), ("Filename", "CMU-1"), ("Mystery", "x")),
                     prof, PlanOptions(DatePolicy("year"), new_id="R1"))
    acts = {d.field.subkey: (d.action, d.new_value) for d in plan.fields}
    assert acts["MPP"] == ("keep", "0.5")
    assert acts["Date"] == ("date", "01/01/09")
    assert acts["Filename"] == ("replace", "R1")
    assert acts["Mystery"][0] == "remove" and plan.unknowns()[0].field.subkey == "Mystery"
    assert {d.image.role: d.action for d in plan.images} == {"level": "keep", "label": "remove"}


def test_replace_without_new_id_removes():
    plan = make_plan(_inv(("Filename", "CMU-1")), load_profile("aperio"), PlanOptions(DatePolicy()))
    assert plan.fields[0].action == "remove"


def test_strict_refuses_unknown():
    with pytest.raises(StrictRefusal, match="1 key\\(s\\) named by the file in description"):
        make_plan(_inv(("Mystery", "x")), load_profile("aperio"), PlanOptions(DatePolicy(), strict=True))


def test_strict_refusal_never_prints_a_key_name_the_file_chose():
    """An unknown key's name may itself be PHI ("Jane Doe = 1"); refusal lines reach shared logs."""
    with pytest.raises(StrictRefusal) as err:
        make_plan(_inv(("Jane Doe", "1"), ("MRN 4455667", "x")), load_profile("aperio"),
                  PlanOptions(DatePolicy(), strict=True))
    msg = str(err.value)
    assert "Jane" not in msg and "4455667" not in msg and "2 key(s) named by the file in description" in msg


def test_override_file_merges(tmp_path):
    over = tmp_path / "o.toml"
    over.write_text('[description]\nMystery = { action = "keep", type = "integer" }\nBare = "keep"\n'
                    'MPP = "remove"\n[images]\nlabel = "keep"\n')
    prof = load_profile("aperio", over)
    plan = make_plan(_inv(("Mystery", "12"), ("Bare", "x"), ("MPP", "0.5")), prof, PlanOptions(DatePolicy()))
    # a bare keep on text fails closed (value policy): only typed values are kept
    assert [d.action for d in plan.fields] == ["keep", "remove", "remove"]
    assert "free text needs a type or a pattern" in plan.fields[1].rule
    assert prof.image_action("label") == "keep" and "override:o.toml" in prof.sources
    assert prof.sha256 != load_profile("aperio").sha256


@pytest.mark.parametrize("text,match", [
    ('[description]\nMPP = "obliterate"\n', "unknown action"),
    ('[description]\nDate = "date"\n', "needs a format"),
    ('[images]\nlabel = "sometimes"\n', "unknown action"),
    ('[description\n', "not valid TOML"),
])
def test_bad_override_is_a_clear_error(tmp_path, text, match):
    over = tmp_path / "bad.toml"
    over.write_text(text)
    with pytest.raises(ProfileError, match=match):
        load_profile("aperio", over)


def test_override_entry_replaces_the_shipped_entry_whole(tmp_path):
    over = tmp_path / "o.toml"
    over.write_text("[tags]\nSoftware = { action = \"keep\", pattern = 'Aperio Image Library v\\d+(\\.\\d+)*' }\n")
    prof = load_profile("aperio", over)
    assert prof.data["tags"]["Software"] == {"action": "keep", "pattern": r"Aperio Image Library v\d+(\.\d+)*"}
    assert prof.data["tags"]["Make"]["type"] == "enum"  # the rest of the section is still the shipped one
