"""MIDI-B-style scoring: every Annex E option combination against a hand-written answer key.

tests/dicom_answer_key.json plants values in a synthetic 4-instance series (built from
the highdicom sample like test_dicom_synthetic) and says, per attribute and per option,
what the output must show: removed, retained, new-id, date-shifted, uid-changed (keyed and
the same in every instance) or uid-retained. Each combination is de-identified, verified
(dciodvfy included: no error the input did not have) and scored; every expectation must hold.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pydicom
import pytest

from test_dicom_fixtures import SECRET, output_files, read, run
from test_dicom_synthetic import build_slide
from wsideid.dates import DatePolicy, make_policy, subject_offset_days
from wsideid.dicom import dciodvfy
from wsideid.dicom.uids import UidMapper
from wsideid.profiles import load_profile

KEY = json.loads((Path(__file__).parent / "dicom_answer_key.json").read_text())
COMBOS = KEY["combinations"]


def _expanded(names: list[str]) -> list[str]:
    combos = load_profile("dicom").data["dicom_options"]["combinations"]
    out: list[str] = []
    for n in names:
        out += combos.get(n, [n])
    return out


def expected(entry: dict, options: list[str]) -> str:
    """The key's outcome for this combination: the last option of ``expect`` that is selected wins."""
    want = entry["expect"]["default"]
    for opt, outcome in entry["expect"].items():
        if opt in options:
            want = outcome
    return want


def _private_tag(ds: pydicom.Dataset, spec: str) -> tuple[str, int, int]:
    creator, where = spec.split("|")
    group, elem = where.split(",")
    return creator, int(group, 16), int(elem[2:], 16)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder, _ = build_slide(tmp_path_factory.mktemp("answer-key") / "case-ak")
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        for kw, entry in KEY["attributes"].items():
            setattr(ds, kw, entry["value"])
        for spec, entry in KEY["private"].items():
            creator, group, elem = _private_tag(ds, spec)
            ds.private_block(group, creator, create=True).add_new(elem, entry["vr"], entry["value"])
        ds.save_as(f, enforce_file_format=True)
    return folder


def _outcome(kw: str, planted: str, outs: list[pydicom.Dataset], raws: list[bytes], offset: int) -> str:
    vals = [str(o[kw].value) if kw in o and o[kw].value not in (None, "") else "" for o in outs]
    same = len(set(vals)) == 1
    if same and vals[0] == planted:
        return "retained" if kw not in KEY_UIDS else "uid-retained"
    if same and vals[0] == KEY["new_id"]:
        return "new-id"
    if kw in KEY_UIDS:
        return "uid-changed" if same and vals[0] == UidMapper(SECRET).new_uid(planted) else f"other UID {vals}"
    if same and vals[0] and planted[:8].isdigit() and len(planted) >= 8:
        day = (dt.datetime.strptime(planted[:8], "%Y%m%d") - dt.timedelta(days=offset)).strftime("%Y%m%d")
        if vals[0] == day + planted[8:]:
            return "date-shifted"
    # Removed: no output holds it in the attribute, and (when long enough to be told
    # apart from other bytes) nowhere in the file either.
    if not any(planted in v for v in vals) and (len(planted) < 6 or not any(planted.encode() in r for r in raws)):
        return "removed"
    return f"planted value still present ({vals[0]!r})"


KEY_UIDS = {kw for kw, e in KEY["attributes"].items() if "uid" in e["expect"]["default"]}


def _private_outcome(spec: str, planted: str, outs: list[pydicom.Dataset], raws: list[bytes]) -> str:
    creator, group, elem = _private_tag(outs[0], spec)
    found = []
    for o in outs:
        try:
            found.append(str(o.private_block(group, creator)[elem].value))
        except KeyError:
            found.append("")
    if set(found) == {planted}:
        return "retained"
    if not any(found) and not any(planted.encode() in r or creator.encode() in r for r in raws):
        return "removed"  # the element and its private creator are gone
    return f"private value still present ({found})"


@pytest.mark.parametrize("name", sorted(COMBOS))
def test_answer_key(series, tmp_path, name):
    combo = COMBOS[name]
    options = _expanded(combo["options"])
    policy = make_policy("shift", SECRET, KEY["subject"]) if combo["dates"] == "shift" else DatePolicy()
    res = run(series, tmp_path / "out", new_id=KEY["new_id"], dates=policy, dicom_opts=tuple(combo["options"]),
              detect="off")  # the pixel detectors have nothing to do with the header options scored here
    assert res.status == "published", [(c.name, c.detail) for c in res.report.checks if not c.ok]
    checks = {c.name: c for c in res.report.checks}
    if dciodvfy.available():  # no new dciodvfy error on any option combination
        assert checks["validator"].passed and "no new error" in checks["validator"].detail
    files = output_files(res)
    outs = [read(f) for f in files]
    raws = [f.read_bytes() for f in files]
    offset = subject_offset_days(SECRET, KEY["subject"]) if combo["dates"] == "shift" else 0
    wrong = {}
    for kw, entry in KEY["attributes"].items():
        want, got = expected(entry, options), _outcome(kw, entry["value"], outs, raws, offset)
        if want != got:
            wrong[kw] = (want, got)
    for spec, entry in KEY["private"].items():
        want, got = expected(entry, options), _private_outcome(spec, entry["value"], outs, raws)
        if want != got:
            wrong[spec] = (want, got)
    score = len(KEY["attributes"]) + len(KEY["private"]) - len(wrong)
    assert not wrong, f"{name}: {score} correct, wrong: {wrong}"
    for o in outs:  # the record claims exactly the options applied
        assert sorted(i.CodeValue for i in o.DeidentificationMethodCodeSequence) == combo["codes"], name
        assert o.PatientIdentityRemoved == "YES"
    want_ltm = {"remove": "REMOVED", "shift": "MODIFIED"}[combo["dates"]]
    if "retain-longitudinal-full-dates" in options:
        want_ltm = "UNMODIFIED"
    assert {o.LongitudinalTemporalInformationModified for o in outs} == {want_ltm}


def test_contradictory_options_refused(series, tmp_path):
    from wsideid.errors import WsideidError
    with pytest.raises(WsideidError, match="full-dates"):
        run(series, tmp_path / "a", dates=make_policy("shift", SECRET, "s"),
            dicom_opts=("retain-longitudinal-full-dates",))
    with pytest.raises(WsideidError, match="clean-pixel-data needs"):
        run(series, tmp_path / "b", dicom_opts=("clean-pixel-data",))
    with pytest.raises(WsideidError, match="unknown DICOM option"):
        run(series, tmp_path / "c", dicom_opts=("retain-everything",))


def test_safe_private_dictionary_is_the_standards_table():
    from wsideid.dicom.rules import DicomRules
    profile = load_profile("dicom")
    table = profile.data["dicom_options"]["safe_private_standard"]
    assert len(table) == 130 and len({k.split("|")[0] for k in table}) == 16  # PS3.15 Table E.3.10-1
    on, off = DicomRules(profile, {"safe_private"}), DicomRules(profile, set())
    assert on.private("Philips PET Private Group", 0x00, 0x7053, "DS").letter == "K"
    assert off.private("Philips PET Private Group", 0x00, 0x7053, "DS").letter == "X"
    assert on.private("Philips PET Private Group", 0x00, 0x7053, "UN").letter == "X"  # implicit VR: not vouched
    assert on.private("Philips PET Private Group", 0x00, 0x7055, "DS").letter == "X"  # other group
    assert on.private("ACME PHI", 0x01, 0x0009, "LO").letter == "X"


def test_blank_label_on_a_dicom_overview_is_not_silent(series):
    from test_dicom_fixtures import options
    from wsideid.pipeline import inspect
    plan = inspect(series, options(macro="blank-label"))
    overview = [d for d in plan.images if d.image.role == "overview"]
    assert overview and all(d.action == "remove" and "blank-label" in d.rule for d in overview)
