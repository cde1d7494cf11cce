"""Options are typed (issue 12): ``DeidOptions`` fields are read as fields, never probed.

Why: ``getattr(options, "keep_name", False)`` accepts any object and hides a
renamed or missing field behind its default (a run silently without the
option asked for). This walks every module of the package and fails on a
``getattr`` of an options object, and on an option field typed ``Any``.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

from wsideid.options import DeidOptions

ROOT = Path(__file__).resolve().parents[1] / "wsideid"


def probes(source: str) -> list[int]:
    """Lines of ``getattr(options, ...)``, ``getattr(opts, ...)`` or ``getattr(x.options, ...)`` /
    ``getattr(options.dicom, ...)``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args:
            target = node.args[0]
            name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if name in ("options", "opts") or (isinstance(root, ast.Name) and root.id in ("options", "opts")):
                out.append(node.lineno)
    return out


def test_the_check_finds_a_probe():
    assert probes('x = getattr(options, "keep_name", False)\n') == [1]
    assert probes('x = getattr(options.dicom, "secret", None)\n') == [1]
    assert probes('x = getattr(args, "keep_name", False)\n') == []


def test_no_option_is_probed_with_getattr():
    found = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(ROOT.rglob("*.py")) for line in probes(p.read_text())]
    assert not found, "getattr on options: " + ", ".join(found)


def test_deid_options_fields_are_not_any():
    hints = typing.get_type_hints(DeidOptions, globalns={**vars(__import__("wsideid.options", fromlist=["x"])),
                                                         "DicomOptions": object})
    loose = [f.name for f in dataclasses.fields(DeidOptions) if hints[f.name] is typing.Any]
    assert not loose
