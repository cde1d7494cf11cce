"""The package's import graph: no cycles, and no import from a lower layer to a higher one.

Why: a cycle means two modules cannot be understood (or changed) apart, and an
upward import lets a low-level helper start depending on a stage that uses it;
both make adding a format touch many files. Every ``import`` is counted,
including those inside functions (a lazy import is still a dependency); only imports under
``if TYPE_CHECKING:`` are not, since they never run.

The layers, lowest first (``docs/architecture.md`` explains them). A module
may import modules of its own layer or a lower one, never a higher one:

0 base       errors, model, enums, result, keys, budget, safefs, cells, tables, regions, sniff, refused, tiff/ (the container), jpeg/, icc, textbytes, openslide_guard
1 policy     dates, valuepolicy, naming, options, profiles, label_image, streamheads, detect/, level_cover
2 formats    tiff_family/ (vendors, redaction, labels, XML, in-place, verification), dicom/, mrxs/, needles, date_scan
3 drivers    drivers/ (one per format: tiff, dicom, mirax), registry
4 stages     slide_scan (detectors over a slide's images), slide_scan_thread, publish, audit
5 runner     pipeline
6 front      batch/, report/, cli, __main__, demo, synth* (fixtures made by project code)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "wsideid"

# First matching prefix wins (longest first); a module no prefix matches fails the test.
LAYERS: dict[str, int] = {
    "errors": 0, "model": 0, "enums": 0, "keys": 0, "budget": 0, "safefs": 0, "checks": 0, "cells": 0, "tables": 0,
    "tiff": 0, "jpeg": 0, "icc": 0, "__init__": 0, "hashing": 0, "regions": 0, "result": 0, "sniff": 0, "refused": 0,
    "memory": 0, "textbytes": 0, "openslide_guard": 0, "httpsafe": 0,
    "dates": 1, "valuepolicy": 1, "naming": 1, "profiles": 1, "label_image": 1, "streamheads": 1,
    "detect": 1, "formats": 1, "level_cover": 1, "options": 1, "pseudomaps": 1,
    "tiff_family": 2, "dicom": 2, "needles": 2, "date_scan": 2,
    "mrxs": 2,
    "drivers": 3, "registry": 3,
    "slide_scan": 4, "publish": 4, "audit": 4, "slide_scan_thread": 4,
    "pipeline": 5,
    "batch": 6, "report": 6, "cli": 6, "__main__": 6, "demo": 6, "synth": 6, "synth_large": 6, "mrxs.synth": 6, "synth_ome": 6, "synth_philips": 6, "synth_qptiff": 6,
    "synth_vendors": 6, "dicomweb": 6, "dicomweb_cli": 6,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
        if not (base == "wsideid" or base.startswith("wsideid.")):
            return []
        base = base[len("wsideid"):].lstrip(".")
    else:
        here = mod.split(".") if mod != "__init__" else []
        pkg = here if is_pkg else here[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        base = ".".join(pkg + ([node.module] if node.module else []))
    targets = []
    for alias in node.names:  # ``from . import x`` names a module when x is one
        sub = f"{base}.{alias.name}" if base else alias.name
        targets.append(sub if _exists(sub) else base)
    return [t for t in targets if t]


def _exists(mod: str) -> bool:
    p = PKG.joinpath(*mod.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        mod = module_name(path)
        is_pkg = path.name == "__init__.py"
        deps = edges.setdefault(mod, set())
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("wsideid."):
                        deps.add(_nearest(a.name[len("wsideid."):]))
            elif isinstance(node, ast.ImportFrom):
                deps.update(_nearest(t) for t in _resolve(mod, is_pkg, node))
        deps.discard(mod)
    return edges


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never imported
    at run time: a driver may name a higher layer's type without depending on it)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _nearest(mod: str) -> str:
    parts = mod.split(".")
    while parts and not _exists(".".join(parts)):
        parts.pop()
    return ".".join(parts) or "__init__"


def layer(mod: str) -> int | None:
    parts = mod.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _is_parent_init(src: str, dst: str) -> bool:
    """A package's ``__init__`` importing its own submodules (or a submodule its package) is not
    a layering question: they are one unit."""
    return dst.startswith(src + ".") or src.startswith(dst + ".")


def test_every_module_has_a_layer():
    missing = sorted(m for m in graph() if layer(m) is None)
    assert not missing, f"modules without a layer (add them to LAYERS and docs/architecture.md): {missing}"


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_upward_imports():
    edges = graph()
    bad = []
    for src, deps in sorted(edges.items()):
        for dst in sorted(deps):
            ls, ld = layer(src), layer(dst)
            if ls is None or ld is None or _is_parent_init(src, dst):
                continue
            if ld > ls:
                bad.append(f"{src} (layer {ls}) imports {dst} (layer {ld})")
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path):
    """The walker must count an import inside a function, and find a two-module cycle."""
    src = "def f():\n    from .b import g\n"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert node.level == 1 and node.module == "b"
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


if __name__ == "__main__":  # pragma: no cover - a quick listing while refactoring
    e = graph()
    for c in cycles(e):
        print("cycle:", " <-> ".join(c))
    for s, ds in sorted(e.items()):
        for d in sorted(ds):
            if (layer(s) or 0) < (layer(d) or 0) and not _is_parent_init(s, d):
                print(f"up: {s} ({layer(s)}) -> {d} ({layer(d)})")
    print("no layer:", sorted(m for m in e if layer(m) is None))
    pytest.main([__file__, "-q"])
