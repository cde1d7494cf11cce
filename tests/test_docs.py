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
    text = (ROOT / "docs" / "phi-reference.md").read_text()
    for name in ("aperio.toml", "hamamatsu.toml", "generic_tiff.toml"):
        assert f"formats/{name}" in text
