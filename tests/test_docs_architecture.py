"""docs/architecture.md names real code: every file, module.name, driver method (with its
parameters) and layer it states exists as stated, so a rename cannot leave the map of the
code pointing at nothing."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
SPANS = re.findall(r"`([^`\n]+)`", DOC)


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _driver_cases():
    spec = importlib.util.spec_from_file_location("driver_cases", ROOT / "tests" / "drivers" / "driver_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _objects() -> dict:
    """The names the doc uses for objects rather than modules."""
    from wsideid.drivers.base import Driver
    from wsideid.drivers.tiff import TiffDriver
    from wsideid.errors import VerificationFailed
    from wsideid.model import Plan
    return {"plan": Plan, "driver": Driver, "TiffDriver": TiffDriver, "driver_cases": _driver_cases(),
            "VerificationFailed": VerificationFailed("x")}


def _has(obj, name: str) -> bool:
    return (hasattr(obj, name) or name in getattr(obj, "__dataclass_fields__", {})
            or name in getattr(obj, "__annotations__", {}))


def _resolves(dotted: str, objects: dict) -> bool:
    """``registry.open_input``, ``dicom/redact.plan_frames``, ``drivers.tiff.TiffVendor``,
    ``plan.regions``: whether every part exists."""
    parts = dotted.replace("/", ".").split(".")
    if parts[0] in objects:
        obj, rest = objects[parts[0]], parts[1:]
    else:
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module("wsideid." + ".".join(parts[:i]))
            except ImportError:
                continue
            rest = parts[i:]
            break
        else:
            return False
    for name in rest:
        if not _has(obj, name):
            return False
        obj = getattr(obj, name, obj)
    return True


def test_named_files_exist():
    """Each `path/file.py` (or `.md`) exists: from the repo root, or under wsideid/ (uniquely)."""
    files = {s.split()[-1] if s.startswith(".venv") else s.split()[0] for s in SPANS
             if re.fullmatch(r"[\w./-]+\.(py|md)( .*)?", s.split(" ", 1)[0] if not s.startswith(".venv") else s.split()[-1])}
    files = {f for f in files if "<" not in f and "*" not in f}
    assert len(files) >= 20
    missing = []
    for f in sorted(files):
        if (ROOT / f).exists() or (ROOT / "wsideid" / f).exists():
            continue
        if len(list((ROOT / "wsideid").rglob(f))) != 1:
            missing.append(f)
    assert not missing, missing


def test_named_code_exists():
    """Each `module.name` / `object.attribute` the doc writes resolves to real code."""
    objects = _objects()
    names = {re.sub(r"\(.*", "", s) for s in SPANS}
    dotted = sorted(n for n in names if re.fullmatch(r"[A-Za-z_][\w/]*(\.[A-Za-z_]\w*)+", n)
                    and not n.endswith((".py", ".md", ".toml", ".mrxs")) and n != "typing.Protocol")
    assert len(dotted) >= 25
    missing = [n for n in dotted if not _resolves(n, objects)]
    assert not missing, missing


def _params(func, required_after: int | None = None) -> list[str]:
    """The parameter names, less self; with ``required_after``, less the optional ones past that
    many (a driver may take more, as TiffDriver.open's parsed container, if they have defaults)."""
    params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    if required_after is not None:
        params = params[:required_after] + [p for p in params[required_after:] if p.default is p.empty]
    return [p.name for p in params]


def test_driver_contract_signatures():
    """The driver contract and TiffVendor shape, as the doc writes them (`write(opened, plan,
    scratch, final_name, options, on_recipe) -> Written`), are the Protocols' members with
    those parameters, and every driver class implements them with the same ones."""
    from wsideid.drivers.base import Driver, ImageRef
    from wsideid.drivers.tiff import TiffVendor
    from wsideid.registry import DRIVERS
    from wsideid.tiff_family.vendors import hamamatsu
    text = _section("The driver contract")
    contract, vendor = text.split("A TIFF-family vendor module", 1)
    calls = [(Driver, *c) for c in re.findall(r"`(\w+)\(([^)`]*)\)", contract)]
    calls += [(TiffVendor, *c) for c in re.findall(r"`(\w+)\(([^)`]*)\)", vendor)]
    assert len(calls) >= 15
    optional = {"label_hint": hamamatsu}  # "optionally": a vendor module that has it
    bad = []
    for owner, name, args in calls:
        doc_args = [a.strip() for a in args.split(",") if a.strip()]
        if name == "ImageRef":
            if not set(doc_args) <= set(ImageRef.__dataclass_fields__):
                bad.append(f"ImageRef{tuple(doc_args)}")
            continue
        if name in ("result", "written", "unchanged"):  # the hashing object's (test_hashing_object_methods)
            continue
        impl = optional.get(name, owner)
        if not hasattr(impl, name):
            bad.append(f"{owner.__name__} has no {name}")
            continue
        if doc_args != ["..."] and _params(getattr(impl, name)) != doc_args:
            bad.append(f"{owner.__name__}.{name}{tuple(_params(getattr(impl, name)))} != doc {tuple(doc_args)}")
        if owner is Driver:
            for d in DRIVERS:
                if name == "in_place" and not d.supports_in_place:
                    continue
                if not hasattr(d, name) or (doc_args != ["..."]
                                            and _params(getattr(d, name), len(doc_args)) != doc_args):
                    bad.append(f"{type(d).__name__}.{name} differs from the doc")
    attributes = next(b for b in contract.split("\n- ") if b.startswith("`name`")).split(";")[0]
    bad += [f"Driver has no {a}" for a in re.findall(r"`(\w+)`", attributes) if not _has(Driver, a)]
    bad += [f"TiffVendor has no {a}" for a in re.findall(r"`([A-Z_]+)`", vendor.split("Everything", 1)[0])
            if not _has(TiffVendor, a)]
    assert not bad, bad


def test_hashing_object_methods():
    """`start_hashing` returns an object with the methods the doc names, on every driver."""
    from wsideid.registry import DRIVERS
    line = next(line for line in _section("The driver contract").split("\n- ") if "start_hashing" in line)
    methods = set(re.findall(r"`(\w+)(?:\([^)]*\))?`", line.split("->", 1)[1]))
    assert {"on_recipe", "written", "result", "unchanged"} <= methods
    for d in DRIVERS:
        cls = inspect.signature(d.start_hashing).return_annotation
        owner = getattr(inspect.getmodule(type(d)), cls.strip("'\"")) if isinstance(cls, str) else cls
        assert all(hasattr(owner, m) for m in methods), (type(d).__name__, methods)


def test_layer_table_is_the_import_graph_test_layers():
    """The layer table names exactly the modules tests/test_import_graph.py places, each in
    the same layer (a module the doc forgets is code nobody can place)."""
    spec = importlib.util.spec_from_file_location("graph", ROOT / "tests" / "test_import_graph.py")
    graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph)
    doc: dict[str, int] = {}
    for m in re.finditer(r"^\| (\d) \w+ \| (.*?) \| [^|]* \|$", _section("Where code lives (layers)"), re.M):
        for name in re.findall(r"`([^`]+)`", m.group(2)):
            if not name.endswith(".py"):  # a file inside a package, named in passing
                doc[name.rstrip("/")] = int(m.group(1))
    pkg = ROOT / "wsideid"
    wanted = {k: v for k, v in graph.LAYERS.items()  # the modules there are (a prefix may name none)
              if k != "__init__" and ((pkg / f"{k.replace('.', '/')}.py").exists() or (pkg / k / "__init__.py").exists())}
    synth = {k for k in wanted if k.startswith("synth")}
    assert doc.pop("synth*", None) == 6 and all(wanted[k] == 6 for k in synth)
    wanted = {k: v for k, v in wanted.items() if k not in synth}
    assert doc == wanted, {k: (doc.get(k), wanted.get(k)) for k in doc.keys() | wanted.keys()
                           if doc.get(k) != wanted.get(k)}


def test_vendor_modules_have_the_tiffvendor_shape():
    """Every vendor module in registry.TIFF_VENDORS defines each name of TiffVendor, as the doc says."""
    from wsideid.drivers.tiff import TiffVendor
    from wsideid.registry import TIFF_VENDORS
    names = set(TiffVendor.__annotations__) | {n for n in vars(TiffVendor) if not n.startswith("_")}
    assert {"OPENSLIDE_VENDOR", "claims", "build"} <= names
    missing = {v.__name__: sorted(n for n in names if not hasattr(v, n)) for v in TIFF_VENDORS}
    assert not any(missing.values()), missing


# Dotted names in the user docs that are not code: audit keys, NDPI property keys, other libraries.
NOT_CODE = {"options.overview_label_blanked", "options.reencoded_j2k_frames", "options.reencoded_j2k_tiles",
            "hamamatsu.roi.barcode.macro", "plan.macro_boxes", "_public_dicom.py"}  # the last: in the idiscore wheel
USER_DOCS = ["README.md", "sample_manifests/README.md"] + [
    f"docs/{n}.md" for n in ("user-guide", "dicom", "dicomweb", "detectors", "jpeg-blanking", "formats",
                             "profile-reference")]


def _module_names() -> set[str]:
    """Dotted names of every wsideid module, also by their last parts (`name_lexicon`, `dicom.uids`)."""
    names = set()
    for p in (ROOT / "wsideid").rglob("*.py"):
        parts = p.relative_to(ROOT / "wsideid").with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        names |= {".".join(parts[i:]) for i in range(len(parts))}
    return names


def test_user_docs_code_names_exist():
    """`module.name` in the user docs (`dicom/uids.CODING_SCHEME_UIDS`, `name_lexicon.judge`,
    `wsideid.dicom.record.method_codes`) resolves to code when its module part is a wsideid module;
    a `name.py` they name exists (under wsideid/, once)."""
    modules = _module_names()
    pkg = ROOT / "wsideid"
    bad, checked = [], 0
    for doc in USER_DOCS:
        for span in re.findall(r"`([A-Za-z_][\w./]*)`", (ROOT / doc).read_text()):
            if re.fullmatch(r"[\w/]+\.py", span) and span not in NOT_CODE:
                if not ((ROOT / span).exists() or (pkg / span).exists() or len(list(pkg.rglob(span))) == 1):
                    bad.append(f"{doc}: {span}")
                checked += 1
                continue
            if span in NOT_CODE or not re.fullmatch(r"[A-Za-z_][\w/]*(\.[A-Za-z_]\w*)+", span) or re.search(
                    r"\.(toml|txt|tsv|csv|md|json|svs|ndpi|tiff?|dcm|ini|xlsx|html|jpg)$", span):
                continue
            parts = span.removeprefix("wsideid.").replace("/", ".").split(".")
            mod = next((".".join(parts[:i]) for i in range(len(parts), 0, -1)
                        if ".".join(parts[:i]) in modules), None)
            if mod is None:
                continue
            full = min((m for m in _full_names(mod)), key=len)
            obj = importlib.import_module(f"wsideid.{full}")
            checked += 1
            for name in parts[len(mod.split(".")):]:
                if not _has(obj, name):
                    bad.append(f"{doc}: {span}")
                    break
                obj = getattr(obj, name)
    assert checked >= 40
    assert not bad, "\n".join(bad)


def _full_names(tail: str) -> list[str]:
    """Full dotted module names (below wsideid) ending in ``tail``."""
    found = []
    for p in (ROOT / "wsideid").rglob("*.py"):
        parts = p.relative_to(ROOT / "wsideid").with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        full = ".".join(parts)
        if full == tail or full.endswith("." + tail):
            found.append(full)
    return found
