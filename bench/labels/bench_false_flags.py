"""False flags of the residual detectors on clean slides: `wsideid deid`, defaults and blanked.

Every slide of ../shared/testdata (svs/, ndpi/, tiff/, dicom/ files) and the
synthetic clean pyramids (the PHI corpus's clean bases and wsideid.synth's
demo slides, made here) are de-identified twice: with the defaults, and with
the macro kept and its label blanked (`--keep-macro --macro blank-label`,
where the format has a macro). A run that ends "flagged" (exit 1) on a clean
slide is a false flag: a person must open it. Prints one row per run and the
count; slides refused for a reason (exit 2, e.g. a corrupt file) are listed
apart, as they are neither published nor flagged.

Usage: python bench/labels/bench_false_flags.py [--tree DIR] [--only SUBSTRING]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VARIANTS = {"default": [], "blanked": ["--keep-macro", "--macro", "blank-label"]}


def real_slides() -> list[Path]:
    root = Path(os.environ.get("WSIDEID_TESTDATA", REPO.parent / "shared" / "testdata"))
    return [p for d in ("svs", "ndpi", "tiff", "dicom") if (root / d).is_dir()
            for p in sorted((root / d).iterdir()) if p.is_file()]


def synthetic_slides(folder: Path) -> list[Path]:
    sys.path.insert(0, str(REPO / "tests"))
    import phi_corpus as pc

    from wsideid import synth
    bases = pc.make_bases(folder)
    out = [bases["svs"], bases["ndpi"], bases["tiff"]]
    out += [Path(synth.make_svs(str(folder / "synth.svs")).path),
            Path(synth.make_ndpi(str(folder / "synth.ndpi")).path),
            Path(synth.make_generic_tiff(str(folder / "synth.tiff")).path)]
    return out


def run(tree: Path, src: Path, variant: str, work: Path) -> tuple[int, str]:
    """(exit code, what was flagged or why it was refused) of one deid run."""
    out = work / f"out-{variant}-{src.stem}"
    env = dict(os.environ, PYTHONPATH=str(tree), WSIDEID_SECRET="bench-false-flags-secret-0123456789abcdef")
    proc = subprocess.run([sys.executable, "-m", "wsideid.cli", "deid", str(src), "-o", str(out), "--new-id",
                           "RID-1", "--json", *VARIANTS[variant]], capture_output=True, text=True, cwd=tree,
                          env=env, timeout=900)
    if proc.returncode == 1:
        return 1, _flag_summary(proc.stdout)
    return proc.returncode, proc.stderr.strip().splitlines()[-1][:120] if proc.returncode else ""


def _flag_summary(stdout: str) -> str:
    """Categories and roles of what the detectors flagged, from the --json report."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return "flagged (no JSON)"
    found = set()

    def walk(o):
        if isinstance(o, dict):
            if o.get("has_phi") and "phi_categories" in o:
                found.add(f"{o.get('role')}:{','.join(sorted(o['phi_categories']))}")
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(data)
    return "; ".join(sorted(found)) or "flagged"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=REPO, help="source tree to run (default: this one)")
    ap.add_argument("--only", default="", help="run slides whose path contains this")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "synth").mkdir()
        slides = [(p, "testdata") for p in real_slides()] + [(p, "synthetic") for p in synthetic_slides(work / "synth")]
        flagged, total, refused = 0, 0, []
        print(f"tree {a.tree}, load {os.getloadavg()[0]:.1f}")
        print("| slide | kind | variant | result |")
        print("|---|---|---|---|")
        for src, kind in slides:
            if a.only not in str(src):
                continue
            for variant in VARIANTS:
                code, what = run(a.tree, src, variant, work)
                result = {0: "published", 1: f"FLAGGED {what}"}.get(code, f"refused (exit {code}): {what}")
                print(f"| {src.name} | {kind} | {variant} | {result} |", flush=True)
                if code in (0, 1):
                    total += 1
                    flagged += code == 1
                else:
                    refused.append(f"{src.name}/{variant}")
        print(f"\nfalse flags: {flagged}/{total} runs; refused (neither published nor flagged): {len(refused)}"
              + (f" ({', '.join(refused)})" if refused else ""))


if __name__ == "__main__":
    main()
