"""Kept values, audited as an attacker would (review finding 5).

Every value a shipped profile keeps as it is passes a type, an enumeration or
an allow-list pattern. A pattern is only as good as its tokens: one free token
of letters and digits lets a scanner or a person put a user id, a record number
or a serial into a kept "model" or "software version". The gaps found:

- DICOM ManufacturerModelName admitted any ``[A-Z]{0,4}\\d{1,6}`` token (JDOE42,
  MRN123456, SN12345) and any ``com.pixelmed.<word>`` class name;
- DICOM SoftwareVersions admitted 8-digit build numbers ("1.0 build 4455667");
- DICOM OpticalPathIdentifier admitted a 4-letter word before digits ("JANE 1234");
- DICOM codes under DCM, UCUM, SRT, LN, NCIt, RADLEX, FMA, UMLS, MDC were kept by
  grammar alone (DCM "DOE", UCUM "DOE^JANE", FMA "4455667"): now only codes the
  standard lists are kept, others get the keyed local stand-in;
- OME ``Creator`` admitted ``OMERO.<any word>``; Philips
  ``DICOM_LOSSY_IMAGE_COMPRESSION_METHOD`` any 30-character word;
- a date the policy rewrites but an inventory typed a number (Philips
  ``DICOM_ACQUISITION_DATETIME``) was no date needle.

The lint below holds every shipped pattern to this: no free character, no class
with letters repeated more than 4 times, no run of 7 or more digits (a record
number) except a decimal fraction.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from wsideid.dates import DatePolicy
from wsideid.model import DATETIME, Decision, Field, Inventory, Plan, ValueKind
from wsideid.needles import NeedleKind, needles_for_plan
from wsideid.profiles import load_profile

try:  # Python 3.11+
    import re._constants as sc
    import re._parser as sp
except ImportError:  # pragma: no cover
    import sre_constants as sc  # type: ignore[no-redef]
    import sre_parse as sp  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
TIFF_FORMATS = ("aperio", "generic-tiff", "hamamatsu", "leica", "ome-tiff", "philips", "qptiff", "ventana", "mirax")
DICOM = tomllib.loads((ROOT / "formats" / "dicom.toml").read_text())["dicom_options"]
LETTERS = set(range(65, 91)) | set(range(97, 123))
DIGITS = set(range(48, 58))
# Identifier shapes none of which is a model, a version, a unit or a code.
ATTACKS = ("Jane Doe", "DOE^JANE", "jsmith", "JDOE42", "jdoe42", "MRN123456", "MRN 4455667", "SN12345", "4455667",
           "S24-12345", "S2412345", "H26-1187 KOWALSKI", "jane.doe@st-elsewhere.example", "PC-LAB-12.hospital.org",
           "1.0 build 4455667", "1 4455667", "JANE 1234", "DOE 12", "com.pixelmed.JaneDoe", "OMERO.jdoe42 5.6",
           '"DOE_JANE"', "4455 667", "4455-667", "1234 5678 9012", "Model 4455 667")


def _chars(op, av) -> set[int] | None:
    """The characters one item matches (None: any or a negated class)."""
    if op is sc.LITERAL:
        return {av}
    if op in (sc.ANY, sc.NOT_LITERAL):
        return None
    if op is not sc.IN:
        return set()
    out: set[int] = set()
    for o, a in av:
        if o is sc.NEGATE:
            return None
        if o is sc.LITERAL:
            out.add(a)
        elif o is sc.RANGE:
            out |= set(range(a[0], a[1] + 1))
        elif o is sc.CATEGORY:
            out |= DIGITS if a is sc.CATEGORY_DIGIT else (LETTERS | DIGITS | {95, 32})
    return out


def lint(pattern: str) -> list[str]:
    """What lets free text or a record number through a pattern."""
    problems: list[str] = []

    def walk(seq) -> None:
        prev = None
        for op, av in seq:
            if op in (sc.MAX_REPEAT, sc.MIN_REPEAT):
                lo, hi, sub = av
                if len(sub) == 1:
                    c = _chars(*sub[0])
                    fraction = prev == (sc.LITERAL, 46)
                    if c is None:
                        problems.append("a free character repeated")
                    elif c & LETTERS and hi > 4:
                        problems.append(f"a class with letters repeated {hi} times")
                    elif c and c <= DIGITS and hi >= 7 and not fraction:
                        problems.append(f"a run of {hi} digits")
                walk(sub)
            elif op is sc.SUBPATTERN:
                walk(av[-1])
            elif op is sc.BRANCH:
                for b in av[1]:
                    walk(b)
            elif op in (sc.IN, sc.ANY, sc.NOT_LITERAL) and _chars(op, av) is None:
                problems.append("a free character")
            prev = (op, av)

    walk(sp.parse(pattern.replace("(?i)", ""), re.ASCII))
    return problems


def tiff_patterns():
    for fmt in TIFF_FORMATS:
        prof = load_profile(fmt)
        for section, table in prof.data.items():
            if not isinstance(table, dict) or section in ("profile", "defaults", "images"):
                continue
            for key in table:
                rule, where = prof.rule(section, key)
                if rule.spec is not None and rule.spec.pattern is not None:
                    yield f"{fmt}:{where}", rule.spec.pattern.pattern


def dicom_patterns():
    for kw, pats in DICOM["patterns"].items():
        for p in [pats] if isinstance(pats, str) else pats:
            yield f"dicom:{kw}", p


ALL = list(tiff_patterns()) + list(dicom_patterns())


@pytest.mark.parametrize("where,pattern", ALL, ids=[w for w, _ in ALL])
def test_kept_pattern_has_no_free_token(where, pattern):
    assert lint(pattern) == []


@pytest.mark.parametrize("where,pattern", ALL, ids=[w for w, _ in ALL])
def test_kept_pattern_admits_no_identifier_shape(where, pattern):
    rx = re.compile(pattern, re.ASCII)
    assert [a for a in ATTACKS if rx.fullmatch(a)] == []


def test_code_grammars_vouch_only_where_they_hold_no_record():
    """A scheme kept by grammar alone has a grammar without words or record-length digit runs."""
    listed = set(DICOM["listed_code_schemes"])
    by_grammar = {s: g for s, g in DICOM["coding_schemes"].items() if s not in listed}
    assert set(by_grammar) == {"SCT", "I10", "ICD10"}  # SCT: partition and Verhoeff check digit
    assert lint(by_grammar["I10"]) == [] and lint(by_grammar["ICD10"]) == []


def test_lint_finds_the_old_gaps():
    """The lint fails each pattern the audit found (so it is no test that cannot fail)."""
    old = {"software": r"(?i)v?\d{1,4}(\.\d{1,6}){0,5}([ ._+-]?(build[ .]?\d{1,8}|\d{1,8}))?",
           "omero": r"OMERO\.\w{1,20} ?v?\d{1,4}", "philips": r'"[A-Z0-9_]{1,30}"', "ucum": r"[A-Za-z0-9.%/*^'\[\]()-]{1,16}",
           "fma": r"\d{1,7}", "free": r"Aperio .{1,20}"}
    assert all(lint(p) for p in old.values()), {k: lint(p) for k, p in old.items()}
    # a 4-letter-and-6-digit token passes the lint; the attack battery fails it
    old_model = r"(?i)((Aperio|GT|[A-Z]{0,4}[-_]?\d{1,6}[A-Z]{0,3}(-\d{1,3})?)([ -]|$))+"
    assert {a for a in ATTACKS if re.fullmatch(old_model, a)} >= {"JDOE42", "MRN123456", "SN12345"}
    old_version = r"v?\d{1,4}(\.\d{1,6}){0,5}([ ._+-]?\d{1,6})?"
    assert re.fullmatch(old_version, "4455667")  # a number glued to the version: now only after a separator


# --- DICOM codes and models, through the code the planner runs -------------------------------

@pytest.fixture(scope="module")
def codes():
    pytest.importorskip("pydicom")
    from wsideid.dicom.codes import CodeRules
    return CodeRules(DICOM["coding_schemes"], DICOM["codes"], DICOM["listed_code_schemes"])


@pytest.mark.parametrize("scheme,value", [("DCM", "DOE"), ("DCM", "JANE"), ("DCM", "445566"), ("UCUM", "DOE^JANE"),
                                          ("UCUM", "JaneDoe"), ("FMA", "4455667"), ("LN", "4455667-1"),
                                          ("NCIt", "C4455667"), ("RADLEX", "RID4455667"), ("SRT", "J-SMITH")])
def test_unlisted_code_under_a_standard_scheme_is_not_kept(codes, scheme, value):
    assert not codes.standard(scheme, value)


@pytest.mark.parametrize("scheme,value", [("DCM", "121327"), ("UCUM", "um"), ("SCT", "445405002"), ("NCIt", "C122989")])
def test_listed_codes_are_still_kept(codes, scheme, value):
    assert codes.standard(scheme, value)


@pytest.mark.parametrize("model", ["Aperio GT 450", "Aperio GT450 DX", "Aperio AT2", "ScanScope XT", "NanoZoomer S360",
                                   "NanoZoomer 2.0-HT", "C13220-01", "Pannoramic 250 Flash III", "VENTANA DP 200",
                                   "iScan Coreo", "Axio Scan.Z1", "SLIDEVIEW VS200", "Unknown",
                                   "Aperio converted by com.pixelmed.convert.TIFFToDicom"])
def test_dicom_model_names_still_kept(model):
    assert any(re.fullmatch(p, model) for p in DICOM["patterns"]["ManufacturerModelName"])


@pytest.mark.parametrize("version", ["v10.0.51", "0.9.2", "1.6.5807", "NDP.scan 3.2.4", "2.5.89 build 123",
                                     "4.0.1.1 SP1", "Aperio Image Library v12.0.15", "3.0.1rc2"])
def test_dicom_software_versions_still_kept(version):
    assert any(re.fullmatch(p, version) for p in DICOM["patterns"]["SoftwareVersions"])


# --- a rewritten date is a needle whatever its shape -----------------------------------------

def test_a_date_typed_a_number_is_still_a_date_needle():
    f = Field("ifd[0]/ImageDescription/1:DICOM_ACQUISITION_DATETIME", "philips:DICOM_ACQUISITION_DATETIME",
              "20240314102233.000000", kind=ValueKind.NUMBER)
    d = Decision(f, DATETIME, "20240101102233.000000", "philips.DICOM_ACQUISITION_DATETIME")
    plan = Plan(Inventory("philips", "x", [], [f]), [d], [], "p", "0" * 64, {})
    dates = {n.text for n in needles_for_plan(plan).needles if n.kind == NeedleKind.DATE}
    assert "2024-03-14" in dates and "20240314" in dates
    assert not any("2024-01-01" == t for t in dates)  # the date the policy wrote is not one


def test_leica_version_build_date_follows_the_date_policy(tmp_path):
    """Leica's device version carried a date that a keep pattern passed unchanged: a person could
    write any date there. It is now a date group: removed (or reduced, shifted) by the policy."""
    from wsideid.pipeline import DeidOptions, deidentify
    from wsideid.synth_vendors import make_scn
    src = tmp_path / "case.scn"
    make_scn(str(src))
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(new_id="RID-V", detect="off", dates=DatePolicy("remove")))
    assert res.status == "published", res.report.failures()
    data = Path(res.output).read_bytes()
    assert b"2012/05/10" not in data and b'version="1.5.1.10804 ;1.5.1.10864"' in data
    assert "2012-05-10" in {n.text for n in needles_for_plan(res.plan).needles if n.kind == NeedleKind.DATE}
