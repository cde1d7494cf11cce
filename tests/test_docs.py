"""The PHI reference a privacy officer reads is the one the profiles define."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_phi_reference_is_generated_from_current_profiles():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_phi_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (ROOT / "docs" / "phi-reference.md").read_text()
    assert committed == gen.render(), "run: python scripts/gen_phi_reference.py"


def test_every_shipped_profile_is_documented():
    from wsideid.registry import DRIVERS
    text = (ROOT / "docs" / "phi-reference.md").read_text()
    for name in [d.profile for d in DRIVERS if d.name != "dicom"]:
        assert f"formats/{name}" in text


def test_profile_reference_examples_load(tmp_path):
    """The TOML a privacy officer copies from docs/profile-reference.md is valid."""
    import re

    from wsideid.profiles import load_profile
    text = (ROOT / "docs" / "profile-reference.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        p = tmp_path / f"example{i}.toml"
        p.write_text(block)
        fmt = "aperio" if "aperio" in block or "@header" in block else "hamamatsu"
        load_profile(fmt, p)


# --- Commands and options the user-facing docs show exist in the CLI ---------------------------
# A user copies `wsideid ...` lines from these files; each must parse with the parser the
# installed `wsideid` builds, and every `--flag value` they mention must be an option of it
# with that value among its choices.

USER_DOCS = ["README.md", "sample_manifests/README.md"] + [
    f"docs/{name}.md" for name in ("user-guide", "dicom", "dicomweb", "detectors", "jpeg-blanking", "formats",
                                   "profile-reference", "architecture")]
# Options of other programs the docs show (their own lines are checked by test_doc_script_flags_exist).
FOREIGN_FLAGS = {"--psm": "tesseract", "--with-test-tools": "scripts/setup.sh", "--no-deps": "pip download"}


def _doc_lines(name: str):
    """(line number, text, in a code block) of one doc; a code block's backslash continuations joined."""
    lines = (ROOT / name).read_text().splitlines()
    block, i = False, 0
    while i < len(lines):
        line, start = lines[i], i + 1
        if line.strip().startswith("```"):
            block = not block
        else:
            while block and line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            yield start, line, block
        i += 1


def _doc_commands() -> list[tuple[str, int, str]]:
    """Every `wsideid ...` command line: in code blocks (up to a # comment) and in inline code."""
    import re
    found = []
    for name in USER_DOCS:
        for n, line, block in _doc_lines(name):
            pattern = r"(?:^|[\s$(])(wsideid\s+[^#\n]*)" if block else r"`(wsideid\s[^`]*)`"
            found += [(name, n, m.group(1).strip()) for m in re.finditer(pattern, line)]
    return found


def _parse(argv: list[str]) -> str:
    """'' when the CLI's parser accepts argv, else argparse's error line."""
    import contextlib
    import io

    from wsideid.cli import build_parser
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return err.getvalue().strip().splitlines()[-1] if exc.code else ""
    return ""


def _subcommands(parser=None, prefix=()) -> set[tuple[str, ...]]:
    import argparse

    from wsideid.cli import build_parser
    parser = parser or build_parser()
    out = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out |= {prefix + (name,)} | _subcommands(sub, prefix + (name,))
    return out


def _cli_options(parser=None, acc=None) -> dict[str, set[str]]:
    """Every option string of every (sub)command, with the choices it accepts (empty: any value)."""
    import argparse

    from wsideid.cli import build_parser
    parser, acc = parser or build_parser(), {} if acc is None else acc
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _cli_options(sub, acc)
        for opt in action.option_strings:
            acc.setdefault(opt, set()).update(action.choices or ())
    return acc


def test_docs_show_commands():
    """The extraction finds the examples (a regex broken by an edit would pass everything)."""
    cmds = _doc_commands()
    assert len(cmds) >= 50
    assert {n for n, _, _ in cmds} >= {"README.md", "docs/user-guide.md", "docs/dicom.md", "docs/dicomweb.md"}


def test_documented_commands_parse():
    """Each documented `wsideid ...` line is accepted by the CLI's argparse: its subcommand, every
    flag, every choice. `[--opt X]` is an optional part (parsed as given); a bare
    `wsideid SUBCOMMAND` in prose only has to name a subcommand."""
    import shlex
    subs = _subcommands()
    bad = []
    for name, n, cmd in _doc_commands():
        argv = shlex.split(cmd.replace("[", " ").replace("]", " "))[1:]
        if len(argv) == 1 and not argv[0].startswith("-"):
            if (argv[0],) not in subs:
                bad.append(f"{name}:{n}: `{cmd}`: no subcommand {argv[0]}")
            continue
        if len(argv) == 2 and tuple(argv) in subs:
            continue
        if err := _parse(argv):
            bad.append(f"{name}:{n}: `{cmd}`: {err}")
    assert not bad, "\n".join(bad)


def test_documented_options_and_choices_exist():
    """Every `--flag` the docs mention (prose too) is an option of some wsideid command, and a
    lowercase value after it (`--hash sha256|blake3|none`, `--dates shift/year`) is among its
    choices. Lines running another program (pip, python bench/..., scripts/...) are skipped."""
    import re
    options = _cli_options()
    bad = []
    for name in USER_DOCS:
        for n, line, block in _doc_lines(name):
            if block and re.match(r"\s*(pip|\S*python\S*|bash|tesseract)\s", line):
                continue
            for m in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?:[ =]([a-z0-9][a-z0-9|/_-]*))?", line):
                flag, value = m.group(1), m.group(2)
                if flag in FOREIGN_FLAGS:
                    continue
                if flag not in options:
                    bad.append(f"{name}:{n}: {flag} is no wsideid option")
                elif value and options[flag]:
                    bad += [f"{name}:{n}: {flag} {v}: not one of {sorted(options[flag])}"
                            for v in re.split(r"[|/]", value) if v not in options[flag]]
    assert not bad, "\n".join(bad)


def test_doc_script_flags_exist():
    """The flags the docs pass to the project's own scripts (bench/, scripts/) are in their --help."""
    import re
    import subprocess
    import sys
    bad, seen = [], 0
    for name in USER_DOCS:
        for n, line, block in _doc_lines(name):
            m = re.match(r"\s*\S*python\S*\s+((?:bench|scripts)/\S+\.py)(.*)", line) if block else None
            if not m:
                continue
            seen += 1
            usage = subprocess.run([sys.executable, str(ROOT / m.group(1)), "--help"], capture_output=True,
                                   text=True, timeout=120, cwd=ROOT).stdout
            bad += [f"{name}:{n}: {m.group(1)} has no {flag}"
                    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2)) if flag not in usage]
    assert seen >= 3
    assert not bad, "\n".join(bad)


# --- sample_manifests/ ---------------------------------------------------------------------------

def _sample_folder(tmp_path: Path, manifest: Path) -> Path:
    """A copy of a sample manifest beside placeholders for the slides its rows name."""
    import shutil

    from wsideid.batch.manifest import read_table
    tmp_path.mkdir(parents=True)
    dst = tmp_path / manifest.name
    shutil.copyfile(manifest, dst)
    table = read_table(dst)
    col = [c.strip().lower() for c in table[0]].index("source")
    for cells in table[1:]:
        src = tmp_path / cells[col]
        src.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix:
            src.write_bytes(b"placeholder")
        else:
            src.mkdir(exist_ok=True)
    return dst


def test_sample_manifests_parse(tmp_path):
    """Every sample manifest is accepted by the manifest reader, each row valid (the slides named
    exist), and its columns are the ones sample_manifests/README.md says it shows."""
    import re

    from wsideid.batch.manifest import COLUMNS, parse_manifest, read_table
    readme = (ROOT / "sample_manifests" / "README.md").read_text()
    files = sorted(p for p in (ROOT / "sample_manifests").iterdir() if p.suffix in (".csv", ".xlsx"))
    assert [p.name for p in files] == ["full.csv", "minimal.csv", "minimal.xlsx", "to_dicom.csv"]
    for f in files:
        assert f"`{f.name}`" in readme
        rows, problems = parse_manifest(_sample_folder(tmp_path / f.stem / f.suffix[1:], f))
        assert rows and not problems, (f.name, [str(p) for p in problems])
    header = lambda name: [c.strip().lower() for c in read_table(ROOT / "sample_manifests" / name)[0]]  # noqa: E731
    full_row = next(line for line in readme.splitlines() if line.startswith("| `full.csv`"))
    left_out = re.search(r"every column but (.*?):", full_row).group(1)
    assert set(header("full.csv")) == set(COLUMNS) - set(re.findall(r"`(\w+)`", left_out))
    xlsx_row = next(line for line in readme.splitlines() if line.startswith("| `minimal.xlsx`"))
    assert set(header("minimal.xlsx")) == set(re.findall(r"`(\w+)`", xlsx_row.split("|")[2]))
    assert header("minimal.csv") == ["source", "new_id"]


def test_every_manifest_column_is_documented():
    """Each column the reader knows is in the user guide's column table and the samples' list."""
    from wsideid.batch.manifest import COLUMNS
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    samples = (ROOT / "sample_manifests" / "README.md").read_text()
    assert [c for c in COLUMNS if f"\n| `{c}` |" not in guide] == []
    assert [c for c in COLUMNS if f"\n- `{c}` (" not in samples and f"\n- `{c}`:" not in samples] == []


# --- README's set-up -----------------------------------------------------------------------------

def test_readme_setup_commands_are_the_scripts():
    """README's two commands are scripts/demo.sh (set-up, then `wsideid demo`) and scripts/test.sh
    (set-up with the test tools, then pytest), which .ci/run is; the packages README lists are
    the ones scripts/setup.sh installs, and the Python it names is the one setup.sh and
    pyproject.toml require."""
    import re
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## The two commands", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == [
        "bash scripts/demo.sh", "bash scripts/test.sh"]
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert 'bash "$here/scripts/setup.sh"\n' in demo and demo.rstrip().endswith('exec "$here/.venv/bin/wsideid" demo "$@"')
    test = (ROOT / "scripts" / "test.sh").read_text()
    assert 'bash "$here/scripts/setup.sh" --with-test-tools' in test and "-m pytest" in test
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "bash scripts/test.sh"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    installed = set()
    for group in re.findall(r"apt_packages\+?=\(([^)]*)\)", setup):
        installed |= set(group.split())
    prose = " ".join(readme.split("## The two commands", 1)[1].split("```", 1)[0].split())
    listed = set(re.findall(r"\b(python3-venv|tesseract-ocr|libzbar0|dicom3tools|libjpeg-turbo-progs|libturbojpeg0|"
                            r"fonts-dejavu-core|wamerican(?:-large)?|wbritish-large|hunspell-en-med)\b", prose))
    assert "with its English data" in prose and "tesseract-ocr-eng" in installed
    assert installed - {"python3", "tesseract-ocr-eng"} == listed, (installed, listed)
    tools = set(re.findall(r"test_packages=\(([^)]*)\)", setup)[-1].split())
    assert tools == {"chromium", "orthanc", "orthanc-dicomweb", "orthanc-wsi"}
    assert "chromium and orthanc with its DICOMweb and WSI plugins" in prose
    assert "Python 3.11 or newer" in prose and "PYTHON=/path/to/python3.11" in prose
    assert "sys.version_info < (3, 11)" in setup and 'python="${PYTHON:-python3}"' in setup
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()


def test_readme_figures_name_their_measurement():
    """Each memory figure in README names the bench script or test that measures it, and the
    hostile-file figure is the limit that test asserts."""
    import re
    readme = " ".join((ROOT / "README.md").read_text().split())
    lean = readme.split("**Lean**", 1)[1].split("## ", 1)[0]
    named = re.findall(r"`((?:bench|tests)/[\w/]+\.py)`", lean)
    assert "bench/bench_rss.py" in named and "tests/test_hostile_cli.py" in named, named
    assert all((ROOT / n).exists() for n in named)
    proc = (ROOT / "tests" / "fuzz" / "proc.py").read_text()
    limit = int(re.search(r"RSS_LIMIT_MB = (\d+)", proc).group(1))
    assert f"under {limit} MB of peak RSS on hostile files" in lean


def test_profile_reference_names_every_shipped_profile():
    """docs/profile-reference.md's list of shipped profiles is formats/*.toml, all of them."""
    import re
    text = (ROOT / "docs" / "profile-reference.md").read_text()
    sentence = " ".join(text.split("The shipped profiles are", 1)[1].split("(inside the wheel")[0].split())
    assert set(re.findall(r"`(\w+\.toml)`", sentence)) == {p.name for p in (ROOT / "formats").glob("*.toml")}


def test_user_guide_quotes_the_no_secret_warning():
    """The warning line the user guide shows is the one printed (keys.NO_SECRET_WARNING)."""
    from wsideid.keys import NO_SECRET_WARNING
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    shown = guide.split("one line is printed on stderr:\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert shown == NO_SECRET_WARNING


def test_documented_environment_variables_are_read():
    """Each WSIDEID_* variable the user docs name is read by the code; docs/dicomweb.md's defaults
    for the DICOMweb ones are the code's."""
    import re
    code = "\n".join(p.read_text() for p in (ROOT / "wsideid").rglob("*.py"))
    named = {v for name in USER_DOCS for v in re.findall(r"WSIDEID_[A-Z_]+[A-Z]", (ROOT / name).read_text())}
    assert len(named) >= 5
    assert [v for v in sorted(named) if f'"{v}"' not in code] == []
    doc = " ".join((ROOT / "docs" / "dicomweb.md").read_text().split())
    defaults = re.findall(r"`(WSIDEID_DICOMWEB_\w+)`, default ([\d.]+)", doc)
    assert len(defaults) == 3
    for var, default in defaults:
        assert re.search(rf'"{var}", "{re.escape(default)}"', code), (var, default)


def test_readme_every_command_has_help_and_json():
    """README: "Every command has `--help` and `--json`" (each leaf command), and the commands it
    says still accept `--mkdir` do."""
    import argparse
    import re

    from wsideid.cli import build_parser
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Every command has `--help` and `--json`." in readme

    def leaves(parser, path=()):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for action in subs:
            for name, sub in action.choices.items():
                yield from leaves(sub, path + (name,))
    found = dict(leaves(build_parser()))
    assert len(found) >= 11
    lacking = [" ".join(p) for p, parser in found.items()
               if not {"-h", "--json"} <= {o for a in parser._actions for o in a.option_strings}]
    assert lacking == []
    mkdir = re.search(r"\(([^()]*) still accept `--mkdir`", readme).group(1)
    for cmd in re.findall(r"`(\w+)`", mkdir):
        assert _parse([cmd, "x", "-o", "y", "--region", "1,1,1,1", "--mkdir"]) == "", cmd


def test_jpeg_blanking_api_block_is_the_api():
    """docs/jpeg-blanking.md's API block: its import runs, and each signature it shows has the
    function's parameters, in order, with the defaults shown; BlankResult has the fields shown."""
    import inspect
    import re

    import wsideid.jpeg as jpeg
    text = (ROOT / "docs" / "jpeg-blanking.md").read_text()
    block = text.split("## API\n\n```python\n", 1)[1].split("```", 1)[0]
    imports, sigs = block.split("\n\n", 1)
    exec(imports, {})
    shown = {}
    for name, args in re.findall(r"^(\w+)\((.*?)\)\s*(?:\n\s*)?->", sigs, re.M | re.S):
        shown[name] = [a.strip() for a in args.split(",") if a.strip()]
    assert len(shown) == 5, shown
    for name, args in shown.items():
        if args and args[0] == "...same...":
            args = shown["blank_regions"] + args[1:]
        params = inspect.signature(getattr(jpeg, name)).parameters.values()
        actual = [p.name if p.default is p.empty else f"{p.name}={p.default!r}".replace("'", '"') for p in params]
        assert args == actual, (name, args, actual)
    fields = re.search(r"BlankResult\(([^)]*)\)", sigs).group(1).replace(" ", "").split(",")
    from wsideid.jpeg.blank import BlankResult
    assert fields == list(BlankResult.__annotations__)


def test_dicom_md_options_table_is_the_code():
    """docs/dicom.md's `--dicom-option` table: every name is an option of dicom.rules.OPTIONS with
    the column and CID 7050 code the code uses, all options are listed, and the named
    combinations are those of dicom/profile_wsi.toml."""
    import re
    import tomllib

    from wsideid.dicom.record import COLUMN_CODES
    from wsideid.dicom.rules import OPTIONS
    text = (ROOT / "docs" / "dicom.md").read_text()
    table = text.split("| `--dicom-option` | option | code | column |", 1)[1].split("\n\n", 1)[0]
    per_instance = {"clean_struct": "113104", "clean_pixels": "113101"}  # claimed per instance (record.method_codes)
    seen = set()
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"^`([a-z-]+)`", cells[0])
        if not names:
            continue
        name, code, column = names[0], cells[2], cells[3]
        seen.add(name)
        assert name in OPTIONS, name
        want = OPTIONS[name]
        assert column == ("—" if want == "clean_pixels" else want), (name, column)
        assert code == {**COLUMN_CODES, **per_instance}[want], (name, code)
    assert seen == set(OPTIONS)
    combos = re.findall(r"^\| `(\w+)` \|", text.split("Named combinations", 1)[1].split("\n\n", 2)[1], re.M)
    profile = tomllib.loads((ROOT / "wsideid" / "dicom" / "profile_wsi.toml").read_text())
    assert combos == list(profile["dicom_options"]["combinations"])


def test_readme_formats_table_is_the_registry():
    """README's format table: one row per driver of the registry, each with that driver's profile
    and (TIFF family, MIRAX) the vendor OpenSlide reads its output as."""
    import re

    from wsideid.registry import DRIVERS
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| Format | Detected by | Profile |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = {}
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        profile = re.findall(r"`(\w+\.toml)`", cells[2])
        if profile:
            rows[profile[0]] = cells
    assert set(rows) == {d.profile for d in DRIVERS}
    for d in DRIVERS:
        vendor = getattr(d, "openslide_vendor", None)
        reads_as = re.findall(r"`([\w-]+)`", rows[d.profile][3])
        assert reads_as == ([vendor] if vendor else []), (d.name, reads_as, vendor)




def test_detectors_api_block_is_the_api():
    """docs/detectors.md's API block: the imports run, each function shown has the parameters shown
    (names, order, defaults), and Finding / PhiFlag have the fields shown."""
    import dataclasses
    import inspect
    import re

    import wsideid.detect as detect
    from wsideid.label_image import make_label_image
    text = (ROOT / "docs" / "detectors.md").read_text()
    block = text.split("## API\n\n```python\n", 1)[1].split("```", 1)[0]
    exec("\n".join(line for line in block.splitlines() if line.startswith("from ")), {})
    funcs = {"make_label_image": make_label_image}
    shown = dict(re.findall(r"^([a-z_]+)\((.*)\) ->", block, re.M))
    assert {"scan_image", "load_image_file", "locate_label", "ndpi_label_hint", "make_label_image"} <= set(shown)
    for name, args in shown.items():
        func = funcs.get(name) or getattr(detect, name)
        actual = [p.name if p.default is p.empty else f"{p.name}={p.default!r}".replace("'", '"')
                  for p in inspect.signature(func).parameters.values()]
        assert [a.strip() for a in re.split(r",\s*(?![^(]*\))", args) if a.strip()] == actual, (name, actual)
    for cls in ("Finding", "PhiFlag"):
        args = re.search(rf"^{cls}\(([^)]*)\)", block, re.M).group(1)
        fields = [re.split(r"[=:]", a)[0].strip() for a in re.split(r",\s*(?![^(]*\))", args)]
        assert fields == [f.name for f in dataclasses.fields(getattr(detect, cls))], (cls, fields)
