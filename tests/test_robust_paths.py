"""Paths and secrets: outputs stay in OUTDIR, symlinks are not followed, secrets and PHI never leak.

The secret keys date shifts and UIDs; printing or recording it would let
anyone undo the shift. Audit records name fields by path and action only,
so searching them for every planted and removed value must find nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realdata import REAL_TIFF_SLIDES, TESTDATA
from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth import PLANTED

CLI = [sys.executable, "-m", "wsideid.cli"]


@pytest.mark.parametrize("new_id", ["../escape", "/abs/path", "a/b", "a\\b", "..", ".", "x" * 65, "a\0b",
                                    "id\nX", "~root"])
def test_unsafe_new_ids_are_refused(new_id, synth_slides, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WsideidError):
        deidentify(synth_slides["generic-tiff"], out, DeidOptions(new_id=new_id, detect="off"))
    assert os.listdir(out) == [] and sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("new_id", ["CON", "nul", "COM1", "LPT9.x"])
def test_reserved_names_are_refused(new_id, synth_slides, tmp_path):
    with pytest.raises(WsideidError):
        deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(new_id=new_id, detect="off"))


def test_symlink_at_the_output_path_is_not_followed(synth_slides, tmp_path):
    """An existing symlink at OUTDIR/<name> must neither be written through nor, with --overwrite, its target touched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "R-1.tiff"
    link.symlink_to(victim)
    with pytest.raises(WsideidError, match="symbolic link"):
        deidentify(synth_slides["generic-tiff"], out, DeidOptions(new_id="R-1", detect="off"))
    assert victim.read_text() == "keep me" and link.is_symlink()
    # issue 17: a link at a name the tool writes is refused, with --overwrite too (it used to be replaced)
    with pytest.raises(WsideidError, match="symbolic link"):
        deidentify(synth_slides["generic-tiff"], out, DeidOptions(new_id="R-1", detect="off", overwrite=True))
    assert victim.read_text() == "keep me" and link.is_symlink()


def test_symlink_at_the_audit_path_is_not_followed(synth_slides, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "R-2.tiff.audit.json").symlink_to(victim)
    with pytest.raises(WsideidError, match="symbolic link"):  # issue 17: refused (it used to be replaced)
        deidentify(synth_slides["generic-tiff"], out, DeidOptions(new_id="R-2", detect="off"))
    assert victim.read_text() == "keep me" and not (out / "R-2.tiff").exists()


def test_dangling_symlink_at_the_output_path_is_refused(synth_slides, tmp_path):
    """lexists, not exists: a dangling link would otherwise let os.replace succeed silently over a planted path."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "R-3.tiff").symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(WsideidError, match="symbolic link"):
        deidentify(synth_slides["generic-tiff"], out, DeidOptions(new_id="R-3", detect="off"))
    assert not (tmp_path / "nowhere").exists()


def _all_text(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("via", ["file", "env"])
def test_secret_is_never_printed_or_written(via, synth_slides, tmp_path):
    secret = "s3cr3t-" + "9f8e7d6c5b4a" * 3
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "WSIDEID_SECRET": ""}
    args = CLI + ["deid", str(synth_slides["hamamatsu"]), "-o", str(out), "--dates", "shift", "--subject", "p7",
                  "--json", "--no-ocr"]
    if via == "file":
        (tmp_path / "key").write_text(secret + "\n")
        args += ["--secret-file", str(tmp_path / "key")]
    else:
        env["WSIDEID_SECRET"] = secret
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode in (0, 1), p.stderr
    blob = (p.stdout + p.stderr).encode() + _all_text(out) + _all_text(Path(str(out) + "-review")) \
        if Path(str(out) + "-review").exists() else (p.stdout + p.stderr).encode() + _all_text(out)
    for form in (secret.encode(), secret.encode().hex().encode(), secret.encode("utf-16-le")):
        assert form not in blob
    audit = json.loads(next(out.glob("*.audit.json")).read_text())
    assert "offset" not in json.dumps(audit["options"]).lower()


def test_short_secret_error_does_not_echo_it(synth_slides, tmp_path):
    (tmp_path / "key").write_text("tooshort")
    p = subprocess.run(CLI + ["deid", str(synth_slides["aperio"]), "-o", str(tmp_path), "--dates", "shift",
                              "--subject", "p", "--secret-file", str(tmp_path / "key")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "tooshort" not in p.stderr + p.stdout
    assert sorted(os.listdir(tmp_path)) == ["key"]


def _needles(values) -> list[str]:
    out = set()
    for v in values:
        v = str(v).strip()
        if len(v) < 4 or (v.startswith("<") and v.endswith(">")):
            continue
        if v.replace(".", "").isdigit() and len(v) < 6:
            continue  # short numbers also occur as sizes, counts and timings
        out.add(v.lower())
    return sorted(out)


def _slides(synth_slides) -> list[Path]:
    real = [TESTDATA / r for r in REAL_TIFF_SLIDES if (TESTDATA / r).exists()]
    return list(synth_slides.values()) + real


def test_audit_records_hold_no_phi(synth_slides, tmp_path):
    """Every planted value and every value a plan removes is absent from the audit (and from inspect --json's peers)."""
    checked = 0
    for k, src in enumerate(_slides(synth_slides)):
        out = tmp_path / f"o{k}"
        out.mkdir()
        plan = inspect(src)
        needles = _needles(list(PLANTED) + plan.removed_values())
        res = deidentify(src, out, DeidOptions(new_id=f"R-{k}", detect="off"))
        text = Path(res.audit_path).read_text().lower()
        leaked = [n for n in needles if n in text]
        assert not leaked, (src.name, leaked)
        checked += len(needles)
    assert checked > 50  # the search had something to look for
