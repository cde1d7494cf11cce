"""Generate docs/phi-reference.md from the shipped profiles.

The reference is made from formats/*.toml (entries, actions and the comment
on each line), so the document a privacy officer reads cannot drift from
what the tool does. tests/test_docs.py fails when the committed file is
stale: rerun `python scripts/gen_phi_reference.py` after editing a profile.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from wsideid.tiff.tags import tag_number  # noqa: E402
FORMATS = [
    ("aperio.toml", "Aperio SVS", [
        "Carriers: TIFF tags of every IFD; the ImageDescription of every IFD, split into its header "
        "(software and geometry history) and `Key = Value` pairs; the label (NewSubfileType 1) and macro "
        "(NewSubfileType 9) images; APPn/COM segments inside JPEG tiles and JPEGTables (always stripped, "
        "except a bare JFIF APP0 and the Adobe APP14).",
        "The header is rebuilt from tokens that each parse as their type (an Aperio product name and "
        "version, sizes `WxH`, regions `[x,y WxH]`, tiles `(WxH)`, codec/colour from an enumeration, `Q=n`, "
        "`->`): a name, file name or note in the history never survives, and the dropped text is recorded "
        "for the verifier.",
    ]),
    ("hamamatsu.toml", "Hamamatsu NDPI", [
        "Carriers: TIFF tags of every IFD, including the private tags 65420-65480 (SlideLabel 65427 is "
        "repeated in every IFD); the property map in tag 65449 (CRLF `Key=Value` lines, including a shading "
        "block whose keys start with `;`); the macro (SourceLens -1), which shows the printed label; the map "
        "(SourceLens -2); vendor comments inside the JPEG strips (the fixed `Hamamatsu NanoZoomer Digital "
        "Pathology` comment is kept, any other is stripped and McuStarts moved accordingly).",
    ]),
    ("generic_tiff.toml", "Generic tiled TIFF", [
        "An allow-list: the tags needed to decode and place the pyramid are kept; free text and identity "
        "tags are removed; any other tag, including private ones, is unknown and removed (or refuses the "
        "slide with `--strict`).",
    ]),
    ("mrxs.toml", "3DHistech MIRAX", [
        "Carriers: every key of Slidedat.ini (slide name and id, project, creation date and time, scanner "
        "hardware ids in vendor groups, the names of non-hierarchical layers); the label "
        "(ScanDataLayer_SlideBarcode), the macro (ScanDataLayer_SlideThumbnail) and other non-hierarchical "
        "records (ProfileXML, histograms) in the data files; the data file headers (slide id, "
        "`ProfileName=...`); APPn/COM segments of JPEG records; the .mrxs file itself.",
        "The key file's [HIERARCHICAL] and [DATAFILE] groups are rebuilt from what is kept, the index is "
        "written anew, and each data file is a fresh header followed by the kept records only; SLIDE_ID "
        "becomes a keyed pseudonym everywhere it stands; the .mrxs file is written empty; camera positions "
        "are re-packed from checked numbers.",
    ]),
]

_LINE = re.compile(r'^\s*("?[^"=\[]+"?|"[^"]+")\s*=\s*(.+?)\s*(?:#\s*(.*))?$')


def _comments(text: str) -> dict[tuple[str, str], str]:
    """Trailing comments per (section, key) from the raw TOML text."""
    out: dict[tuple[str, str], str] = {}
    section = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s.strip("[]")
            continue
        if not s or s.startswith("#"):
            continue
        m = _LINE.match(line)
        if m and m.group(3):
            out[(section, m.group(1).strip().strip('"'))] = m.group(3).strip()
    return out


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a regex alternation's "|" must not split the row)."""
    return text.replace("|", "\\|")


def _action(spec) -> str:
    if isinstance(spec, str):
        return "keep: numbers the TIFF type guarantees, text removed" if spec == "keep" else spec
    action = spec.get("action", "")
    parts = [action]
    if action in ("keep", "text"):
        if "type" in spec:
            what = spec["type"]
            if "values" in spec:
                what += " " + ", ".join(f"`{v}`" for v in spec["values"])
            if "min" in spec and "max" in spec:
                what += f" in [{spec['min']}, {spec['max']}]"
            elif "min" in spec:
                what += f" ≥ {spec['min']}"
            elif "max" in spec:
                what += f" ≤ {spec['max']}"
            parts = [f"keep if {what}"]
        elif "pattern" in spec:
            parts = [f"keep if it matches `{_cell(spec['pattern'])}`"]
            if "format" in spec:
                parts.append(f"(its `date` group, `{spec['format']}`, gets the date policy)")
        parts.append(f"else replace by `{spec['value']}`" if spec.get("else") == "replace" else "else remove")
        return " ".join(parts)
    if "value" in spec:
        parts.append(f"→ `{spec['value']}`")
    if "format" in spec:
        parts.append(f"(`{spec['format']}`)")
    return " ".join(parts)


def render() -> str:
    out = ["# PHI reference: what each format holds and what wsideid does with it", "",
           "Generated from `formats/*.toml` by `scripts/gen_phi_reference.py`; do not edit by hand.",
           "Actions are explained in `docs/profile-reference.md`. A kept value must pass the **value policy**:",
           "it parses wholly as its declared type (integer, decimal, rational, numbers, enum), or wholly matches",
           "its allow-list pattern, with no control character anywhere; otherwise it is removed (or replaced by",
           "the entry's neutral value) and the audit records the check it failed. No entry keeps free text as it",
           "is. `date`/`datetime` follow the run's date policy (`--dates remove|year|shift`); `time` is kept only",
           "under `shift`. Anything not listed is **unknown**: removed and recorded in the audit, or the slide is",
           "refused with `--strict`.", "",
           "DICOM WSI attributes are covered by `formats/dicom.toml` and `docs/dicom.md`.", ""]
    for fname, title, intro in FORMATS:
        path = ROOT / "formats" / fname
        text = path.read_text()
        data = tomllib.loads(text)
        notes = _comments(text)
        out += [f"## {title} (`formats/{fname}`)", ""] + [p + "\n" for p in intro]
        out += ["### Images", "", "| role | action | note |", "|---|---|---|"]
        for role, action in data.get("images", {}).items():
            out.append(f"| {role} | {action} | {notes.get(('images', role), '')} |")
        out.append("")
        for section, heading in (("tags", "TIFF tags"), ("description", "ImageDescription keys"),
                                 ("properties", "Property map keys (tag 65449)"),
                                 ("general", "Slidedat.ini [GENERAL]"), ("hierarchical", "Slidedat.ini [HIERARCHICAL]"),
                                 ("datafile", "Slidedat.ini [DATAFILE]"), ("level", "Slidedat.ini zoom level groups"),
                                 ("nonhier_value", "Slidedat.ini non-hierarchical record groups")):
            table = data.get(section)
            if not table:
                continue
            out += [f"### {heading}", "", "| name | action | note |", "|---|---|---|"]
            for name, spec in table.items():
                note = notes.get((section, name), "")
                number = tag_number(name) if section == "tags" else None
                label = f"`{name}` ({number})" if number is not None else f"`{name}`"
                out.append(f"| {_cell(label)} | {_action(spec)} | {_cell(note)} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    target = ROOT / "docs" / "phi-reference.md"
    target.write_text(render())
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
