#!/usr/bin/env python3
"""Generate formats/dicom.toml from machine-readable copies of the DICOM standard.

Nobody types the 600 rows of PS3.15 Table E.1-1 by hand: a typo there is a
silent leak. This script reads

- Table E.1-1 (Basic Profile and every option column) from the
  ``idiscore`` wheel (``idiscore/_public_dicom.py``, scraped from the
  standard, parsed here with ``ast``: nothing from the wheel is imported or
  executed), and
- the VL Whole Slide Microscopy Image IOD (its modules and the Type of each
  attribute) from the ``dicom-standard`` wheel
  (``standard/ciod_to_modules.json`` and ``module_to_attributes.json``),

and writes the hand-written, commented WSI part
(``wsideid/dicom/profile_wsi.toml``) followed by the generated tables.

    pip download --no-deps -d /tmp/std idiscore==1.2.0 dicom-standard==0.1.0
    .venv/bin/python scripts/gen_dicom_profile.py /tmp/std/idiscore-*.whl /tmp/std/dicom_standard-*.whl

Re-run it after editing profile_wsi.toml; ``--check`` fails when the
committed formats/dicom.toml differs from what would be generated.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag

ROOT = Path(__file__).resolve().parents[1]
HAND_WRITTEN = ROOT / "wsideid" / "dicom" / "profile_wsi.toml"
OUTPUT = ROOT / "formats" / "dicom.toml"
WSI_CIOD = "vl-whole-slide-microscopy-image"

# idiscore rule-set variable -> the option key used in the profile.
OPTION_KEYS = {
    "basic_profile": "basic",
    "retain_safe_private": "safe_private",
    "retain_uid": "uids",
    "retain_device_id": "device",
    "retain_institution_id": "institution",
    "retain_patient_characteristics": "patient_chars",
    "retain_full_dates": "full_dates",
    "retain_modified_dates": "modified_dates",
    "clean_descriptors": "clean_desc",
    "clean_structured_content": "clean_struct",
    "clean_graphics": "clean_graphics",
}
# idiscore ActionCodes attribute -> the letters of Table E.1-1.
LETTERS = {
    "DUMMY": "D", "EMPTY": "Z", "REMOVE": "X", "KEEP": "K", "CLEAN": "C", "UID": "U",
    "EMPTY_OR_DUMMY": "Z/D", "REPLACE_OR_DUMMY": "X/Z", "REMOVE_OR_EMPTY": "X/Z",
    "REMOVE_OR_DUMMY": "X/D", "REMOVE_OR_EMPTY_OR_DUMMY": "X/Z/D", "REMOVE_OR_EMPTY_OR_UID": "X/Z/U*",
}


def _zip_member(wheel: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise SystemExit(f"{wheel.name}: expected one member ending in {suffix}, found {len(names)}")
        return zf.read(names[0])


def read_table(idiscore_wheel: Path) -> tuple[dict[str, dict[str, str]], str]:
    """Table E.1-1 as {identifier: {option key: letter}}; identifier is a keyword,
    a repeating-group pattern like ``(50xx,xxxx)`` or ``@private``."""
    src = _zip_member(idiscore_wheel, "idiscore/_public_dicom.py").decode()
    tree = ast.parse(src)
    scraped = (ast.get_docstring(tree) or "").strip().splitlines()[-1].strip()
    table: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        var = node.targets[0].id  # type: ignore[attr-defined]
        if var not in OPTION_KEYS:
            continue
        rules = next(k.value for k in node.value.keywords if k.arg == "rules")
        for item in rules.elts:  # type: ignore[attr-defined]
            ident_call, action = item.elts
            kind = ident_call.func.id
            letter = LETTERS[action.attr]
            if kind == "SingleTag":
                tag = int(ident_call.args[0].value, 16)
                name = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
            elif kind == "RepeatingGroup":
                pat = ident_call.args[0].value.lower()
                name = f"({pat[:4]},{pat[4:]})"
            elif kind == "PrivateTags":
                name = "@private"
            else:
                raise SystemExit(f"unexpected identifier type {kind} in idiscore table")
            row = table.setdefault(name, {})
            if kind == "SingleTag":
                row.setdefault("tag", f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
            row[OPTION_KEYS[var]] = letter
    return table, scraped


def read_iod(std_wheel: Path) -> dict[str, str]:
    """Attributes of the WSI IOD: {keyword: Type}. Top-level occurrences give the
    Type; attributes found only inside sequences are marked "nested"."""
    ciods = json.loads(_zip_member(std_wheel, "standard/ciod_to_modules.json"))
    modules = {r["moduleId"] for r in ciods if r["ciodId"] == WSI_CIOD}
    rows = json.loads(_zip_member(std_wheel, "standard/module_to_attributes.json"))
    # Functional group macros sit inside the Shared/Per-frame Functional Groups
    # Sequences, so everything in them is nested.
    fg = {r["macroId"] for r in json.loads(_zip_member(std_wheel, "standard/ciod_to_fg_macros.json"))
          if r["ciodId"] == WSI_CIOD}
    for r in json.loads(_zip_member(std_wheel, "standard/macro_to_attributes.json")):
        if r["macroId"] in fg:
            rows.append({"moduleId": "@fg", "path": "@fg:52009229:" + r["path"].split(":", 1)[1], "type": r["type"]})
    modules.add("@fg")
    order = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4, "None": 5}
    iod: dict[str, str] = {}
    for r in rows:
        if r["moduleId"] not in modules:
            continue
        parts = r["path"].split(":")[1:]
        tag = int(parts[-1], 16) if all(len(p) == 8 for p in parts) else None
        if tag is None:
            continue
        kw = keyword_for_tag(tag)
        if not kw:
            continue
        typ = r["type"] if len(parts) == 1 else "nested"
        old = iod.get(kw)
        if old is None or old == "nested" or (typ != "nested" and order.get(typ, 9) < order.get(old, 9)):
            iod[kw] = typ if old is None or typ != "nested" else old
    return iod


def read_safe_private(std_wheel: Path) -> dict[str, str]:
    """PS3.15 Table E.3.10-1 "Safe Private Attributes" (the sample list of E.3.10) from the
    dicom-standard wheel's copy of the section: {"CREATOR|gggg,xxEE": VR}."""
    import html
    import re
    refs = json.loads(_zip_member(std_wheel, "standard/references.json"))
    sect = next((v for k, v in refs.items() if k.endswith("#sect_E.3.10")), None)
    if sect is None or "E.3.10-1" not in sect:
        raise SystemExit("dicom-standard wheel: section E.3.10 (Table E.3.10-1) not found")
    body = sect.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    out: dict[str, str] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        m = re.fullmatch(r"\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)", cells[0]) if len(cells) >= 3 else None
        if m is None:
            raise SystemExit(f"Table E.3.10-1: unexpected row {cells[:3]}")
        out[f"{cells[1]}|{m.group(1).upper()},xx{m.group(2).upper()}"] = cells[2]
    return out


def _toml_key(name: str) -> str:
    return name if name.replace("_", "").isalnum() else json.dumps(name)


def render(table: dict[str, dict[str, str]], scraped: str, iod: dict[str, str], sources: list[str],
           safe: dict[str, str]) -> str:
    hand = HAND_WRITTEN.read_text()
    out = [hand.rstrip("\n"), "",
           "# " + "=" * 74,
           "# GENERATED by scripts/gen_dicom_profile.py -- do not edit below this line.",
           f"# Table E.1-1: {sources[0]} ({scraped}).",
           f"# WSI IOD: {sources[1]}.",
           "# Columns: basic = Basic Profile; the other keys are the options",
           "# (device = Retain Device Identity, modified_dates = Retain Longitudinal",
           "# Temporal Information with Modified Dates, clean_desc = Clean Descriptors,",
           "# safe_private = Retain Safe Private, ...). Letters as in the standard:",
           "# D dummy, Z empty, X remove, K keep, C clean, U new UID; X/Z/D etc.: X unless",
           "# the IOD requires the attribute (Type 1: D, Type 2: Z).",
           "# " + "=" * 74, "",
           "[dicom_options.table]"]
    for name in sorted(table, key=lambda n: (n.startswith(("(", "@")), n)):
        row = table[name]
        cells = []
        if "tag" in row:
            cells.append(f'tag = "{row["tag"]}"')
        for key in OPTION_KEYS.values():
            if key in row:
                cells.append(f'{key} = "{row[key]}"')
        out.append(f"{_toml_key(name)} = {{ {', '.join(cells)} }}")
    out += ["", "# Attributes of the VL Whole Slide Microscopy Image IOD and their Type",
            "# (1, 1C, 2, 2C, 3; \"nested\": only inside a sequence). An attribute listed",
            "# here and NOT in the table above is kept: it is what makes the output a",
            "# valid WSI instance (pixel module, dimensions, spacing, optical path, ...).",
            "[dicom_options.iod]"]
    for kw in sorted(iod):
        out.append(f'{kw} = "{iod[kw]}"')
    out += ["", "# PS3.15 Table E.3.10-1 Safe Private Attributes (from the standard's section E.3.10):",
            "# \"PRIVATE CREATOR|gggg,xxEE\" = VR. Kept only with --dicom-option retain-safe-private,",
            "# when creator, group, element and VR all match, and then under the value policy.",
            "[dicom_options.safe_private_standard]"]
    for key in sorted(safe):
        out.append(f"{json.dumps(key)} = {json.dumps(safe[key])}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("idiscore_wheel", type=Path)
    ap.add_argument("dicom_standard_wheel", type=Path)
    ap.add_argument("--check", action="store_true", help="fail if formats/dicom.toml is not up to date")
    args = ap.parse_args(argv)
    table, scraped = read_table(args.idiscore_wheel)
    iod = read_iod(args.dicom_standard_wheel)
    for kw in list(iod):  # the dictionary VR confirms each keyword is a public attribute
        try:
            dictionary_VR(kw)
        except KeyError:
            del iod[kw]
    safe = read_safe_private(args.dicom_standard_wheel)
    text = render(table, scraped, iod, [args.idiscore_wheel.name, args.dicom_standard_wheel.name], safe)
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text() == text
        print("formats/dicom.toml is up to date" if same else "formats/dicom.toml is out of date")
        return 0 if same else 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(table)} table rows, {len(iod)} IOD attributes, "
          f"sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
