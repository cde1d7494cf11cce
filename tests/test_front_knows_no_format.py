"""The runner and the front end know no format: they ask the driver the registry names.

Why a test: a ``if result.format == "dicom":`` branch in the QC page, the batch
runner or the publish step is how format knowledge leaks out of the drivers
(issue 12), and the next format then silently falls through it. This walks
the syntax trees of the modules above the drivers and fails on any comparison
of a value with a registered format name or container name.
"""

from __future__ import annotations

import ast
from pathlib import Path

from wsideid.drivers.base import Container
from wsideid.registry import names

ROOT = Path(__file__).resolve().parents[1] / "wsideid"
# Above the drivers (layers 4-6 of docs/architecture.md). dicomweb sends DICOM only (its job is
# the format), batch/folder.py finds slide files on disk before any driver is asked.
FRONT = ["pipeline.py", "publish.py", "audit.py", "slide_scan.py", "slide_scan_thread.py", "cli.py", "report",
         "batch"]
EXEMPT = {"batch/folder.py"}


def _modules() -> list[Path]:
    out = []
    for name in FRONT:
        p = ROOT / name
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return [p for p in out if p.relative_to(ROOT).as_posix() not in EXEMPT]


def format_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, name) of every ``x == "<format>"`` / ``!=`` / ``in (...)`` comparison with a format name."""
    known = set(names()) | {c.value for c in Container}
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op in operands:
            values = op.elts if isinstance(op, (ast.Tuple, ast.List, ast.Set)) else [op]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value in known:
                    found.append((node.lineno, v.value))
    return found


def test_the_check_finds_a_format_branch():
    assert format_comparisons('if result.format == "dicom":\n    pass\n') == [(1, "dicom")]
    assert format_comparisons('ok = fmt in ("aperio", "x")\n') == [(1, "aperio")]
    assert format_comparisons('if role == "label":\n    pass\n') == []


def test_no_format_branch_above_the_drivers():
    leaks = [f"{p.relative_to(ROOT)}:{line}: {name!r}" for p in _modules()
             for line, name in format_comparisons(p.read_text())]
    assert not leaks, "format branches outside the drivers: " + "; ".join(leaks)
