"""A removed scanner serial that shares a word with the kept model (review finding 3).

The serial "GT450-SN12345" is removed (device identity) and the model "Aperio
GT450" is kept (its pattern vouches for it). The verifier searched the
serial's part "GT450", found it in the kept model and refused a clean slide.
A part that is a word of a value the profile vouches for by pattern or
enumeration is no needle, when it has a letter and another part of the
identifier is still searched. Both directions are tested: the clean slide
publishes; the serial (whole, or its identifying part) added to the output
refuses; names, digits-only parts and dates keep their needles.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from wsideid.model import DATE, KEEP, REMOVE, Decision, Field, Inventory, Plan, ValueKind
from wsideid.needles import NeedleKind, needles_for_plan
from wsideid.pipeline import DeidOptions, deidentify, verify_output
from wsideid.profiles import load_profile
from wsideid.synth import SCANNER_SN, make_svs

sys.path.insert(0, str(Path(__file__).parent))
from test_value_leaks import _ascii, _text, rewrite  # noqa: E402

SERIAL = "GT450-SN12345"
OPTS = dict(new_id="R-SER-1", detect="off")


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("serial")
    base = make_svs(str(d / "b.svs"), 512, 384, hidden_carriers=False).path

    def edit(i, entries):
        if i == 0:
            desc = _text(entries, 270).replace(f"ScanScope ID = {SCANNER_SN}", f"ScanScope ID = {SERIAL}|ICC Profile = GT450")
            entries[270] = _ascii(270, desc)
            entries[272] = _ascii(272, "Aperio GT450")
    return rewrite(base, d / "s.svs", edit)


@pytest.fixture(scope="module")
def published(slide, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return deidentify(slide, out, DeidOptions(**OPTS))


def test_clean_slide_with_serial_sharing_the_model_publishes(published):
    assert published.status == "published" and published.report.ok, published.report.failures()
    rules = {d.field.key: (d.action, d.field.value) for d in published.plan.fields}
    assert rules["tags:Model"] == ("keep", "Aperio GT450")
    texts = {n.text: n.kind for n in needles_for_plan(published.plan).needles}
    assert texts[SERIAL] == NeedleKind.IDENTIFIER and texts["SN12345"] == NeedleKind.ID_PART
    assert "GT450" not in texts


@pytest.mark.parametrize("leak", [SERIAL, "SN12345"])
def test_the_serial_planted_in_the_output_still_refuses(published, slide, tmp_path, leak):
    bad = tmp_path / "tampered.svs"
    shutil.copyfile(published.output, bad)
    with open(bad, "ab") as fh:
        fh.write(b"\0note " + leak.encode() + b"\0")
    rep = verify_output(slide, bad, DeidOptions(**OPTS))
    check = next(c for c in rep.checks if c.name == "residual-needles")
    assert not check.ok and "ScanScope ID" in check.detail


def _plan(*decisions: Decision) -> Plan:
    return Plan(Inventory("aperio", "x", [], [d.field for d in decisions]), list(decisions), [], "p", "0" * 64, {},
                profile=load_profile("aperio"))


def _d(key: str, value: str, action=REMOVE, kind=ValueKind.TEXT) -> Decision:
    return Decision(Field(f"ifd[0]/{key}", key, value, kind=kind), action, value if action == KEEP else None, key)


def test_names_accessions_and_dates_keep_their_needles():
    plan = _plan(_d("tags:Model", "Aperio GT450", KEEP),
                 _d("description:ScanScope ID", SERIAL, kind=ValueKind.IDENTIFIER),
                 _d("description:User", "GT450 JONES", kind=ValueKind.IDENTIFIER),       # a name: every part stays
                 _d("description:Barcode", "GT450-12345", kind=ValueKind.IDENTIFIER),    # an accession: its digits stay
                 _d("description:Date", "2024-03-14", kind=ValueKind.DATE))
    texts = {(n.text, n.kind) for n in needles_for_plan(plan).needles}
    assert "GT450" in {t for t, _ in texts}  # the name's part, though a model word
    assert ("12345", NeedleKind.ID_PART) in texts and ("GT450-12345", NeedleKind.IDENTIFIER) in texts
    assert any(k == NeedleKind.DATE and t == "2024-03-14" for t, k in texts)
    assert (SERIAL, NeedleKind.IDENTIFIER) in texts and ("SN12345", NeedleKind.ID_PART) in texts


def test_a_part_is_kept_when_it_is_the_only_one():
    """A serial whose every part is a model word keeps them all (the check never goes blind)."""
    plan = _plan(_d("tags:Model", "Aperio GT450", KEEP), _d("description:ScanScope ID", "GT450-X", kind=ValueKind.IDENTIFIER))
    assert "GT450" in {n.text for n in needles_for_plan(plan).needles}


def test_an_unvouched_kept_value_exempts_nothing():
    """A value no profile entry vouches for (an unknown key) exempts no word."""
    plan = _plan(_d("description:NotInTheProfile", "Aperio GT450", KEEP),
                 _d("description:ScanScope ID", SERIAL, kind=ValueKind.IDENTIFIER))
    assert "GT450" in {n.text for n in needles_for_plan(plan).needles}
