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
    for name in ("aperio.toml", "hamamatsu.toml", "generic_tiff.toml", "ventana.toml", "leica.toml", "ome_tiff.toml",
                 "philips.toml", "qptiff.toml", "mrxs.toml"):
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
