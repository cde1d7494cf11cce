"""Byte-identity check for refactors: run the bundled synthetic samples through every mode
and record the sha256 of every file each run writes.

Why: a refactor of the runner, the publish step or the drivers must not change one
output byte. Run it before the change (``record``), then after (``check``); any
difference is printed per file.

What legitimately varies between two runs, and is therefore normalised before
hashing (and only that):
- the temporary work folder's path, wherever it is quoted (``<WORK>``);
- ``--to-dicom`` outputs: wsidicomizer mints random UIDs at each conversion, so
  their instances are compared by content with UID values blanked (and file
  names, which are UIDs, replaced by the content digest), and their audit and
  lab record and uid-map.csv are not compared (instance order, hashes and the
  map's old UIDs follow those UIDs);
- the DICOM sample itself is made by wsidicomizer with random UIDs, so record and
  check must run on the same samples: set ``GOLDEN_SAMPLES=DIR`` for both (made on
  the first run, reused after);
- audit JSON / lab records (``*.json``): keys named ``timings``/``timings_s``/``timings_ms``/
  ``created``/``started``/``finished``/``time``/``timestamp``/``duration*``/
  ``seconds``/``wsideid_version``, and absolute paths of the run's temporary
  folder (replaced by ``<RUN>``);
- CSV files: the run folder in paths (``<RUN>``) and ISO timestamps (``<TS>``);
- nothing else: slide files, DICOM instances, the name maps are hashed as bytes.

The secret is fixed (``WSIDEID_SECRET``), so keyed UIDs, pseudonyms and date
shifts repeat. Samples come from ``wsideid.synth`` (seeded, deterministic).
The detectors run without OCR (``--no-ocr``: barcodes only): tesseract has a
per-call timeout, so on a loaded machine OCR can flag a slide one run and
not the next, which would make routing differ for reasons no refactor caused.

Usage: python scripts/golden_outputs.py record FILE | check FILE
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SECRET = "golden-outputs-fixed-secret-0123456789"
VARYING_KEYS = {"timings", "timings_s", "created", "started", "finished", "time", "timestamp", "duration",
                "duration_s", "seconds", "wsideid_version", "when", "at", "date_written", "written", "timings_ms"}
_WORK = [""]  # the run's work folder, set by run_all
_TS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")


def _cli(args: list[str], cwd: str) -> tuple[int, str]:
    env = dict(os.environ, WSIDEID_SECRET=SECRET)
    env.setdefault("PYTHONHASHSEED", "0")
    p = subprocess.run([sys.executable, "-m", "wsideid.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)
    last = (p.stderr.strip().splitlines() or [""])[-1]
    return p.returncode, last


def _scrub(obj, run: str):
    if isinstance(obj, dict):
        return {k: ("<VARIES>" if k in VARYING_KEYS or k.startswith(("t_", "duration")) else _scrub(v, run))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, run) for v in obj]
    if isinstance(obj, str):
        s = obj.replace(run, "<RUN>").replace(_WORK[0], "<WORK>")
        return _TS.sub(b"<TS>", s.encode()).decode()
    return obj


def _dicom_without_uids(path: str) -> bytes:
    import pydicom
    ds = pydicom.dcmread(path)
    for elem in ds.iterall():
        if elem.VR == "UI":
            elem.value = ""
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    import io
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _digest(path: str, run: str, uid_free: bool = False) -> str:
    if uid_free and path.endswith(".dcm"):
        return hashlib.sha256(_dicom_without_uids(path)).hexdigest()
    if uid_free and path.endswith((".json", "uid-map.csv")):
        return "<varies: random UIDs of the conversion>"
    with open(path, "rb") as fh:
        data = fh.read()
    if path.endswith(".json"):
        try:
            data = json.dumps(_scrub(json.loads(data), run), sort_keys=True).encode()
        except ValueError:
            pass
    elif path.endswith((".csv", ".html", ".txt")):
        data = _TS.sub(b"<TS>", data.replace(run.encode(), b"<RUN>").replace(_WORK[0].encode(), b"<WORK>"))
    return hashlib.sha256(data).hexdigest()


def _tree(folder: str, run: str, uid_free: bool = False) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            digest = _digest(p, run, uid_free)
            rel = os.path.relpath(p, folder)
            if uid_free and f.endswith(".dcm"):
                rel = os.path.join(os.path.dirname(rel), f"instance-{digest[:16]}.dcm")
            out[rel] = digest
    return out


def cases(samples: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """(case name, input, extra CLI args)."""
    svs, ndpi, tif, dcm = samples["svs"], samples["ndpi"], samples["tiff"], samples.get("dicom")
    out = [
        ("svs", svs, []),
        ("svs-detect-all", svs, ["--detect", "all", "--no-ocr"]),
        ("svs-keep-macro", svs, ["--keep-macro"]),
        ("svs-macro-blank-label", svs, ["--macro", "blank-label"]),
        ("svs-label-replace", svs, ["--label", "replace"]),
        ("svs-region", svs, ["--region", "100,100,300,200", "--fill", "black"]),
        ("svs-dates-shift", svs, ["--dates", "shift", "--subject", "S1"]),
        ("svs-verify-full", svs, ["--verify", "full"]),
        ("svs-in-place", svs, ["--in-place"]),
        ("ndpi", ndpi, []),
        ("ndpi-region", ndpi, ["--region", "64,64,256,256"]),
        ("ndpi-macro-blank-label", ndpi, ["--macro", "blank-label"]),
        ("ndpi-in-place", ndpi, ["--in-place"]),
        ("tiff", tif, []),
        ("tiff-in-place", tif, ["--in-place"]),
        ("svs-to-dicom", svs, ["--to-dicom"]),
    ]
    if dcm:
        out += [("dicom", dcm, []),
                ("dicom-region", dcm, ["--region", "10,10,100,80"]),
                ("dicom-keep-macro", dcm, ["--keep-macro"]),
                ("dicom-macro-blank-label", dcm, ["--macro", "blank-label"]),
                ("dicom-label-replace", dcm, ["--label", "replace"])]
    return out


def make_samples(src: str) -> dict[str, str]:
    """The samples, made once into ``src`` (``$GOLDEN_SAMPLES`` reuses them across runs: the
    DICOM sample is made by wsidicomizer, which mints random UIDs each time)."""
    from wsideid.synth import make_dicom, make_generic_tiff, make_ndpi, make_svs
    paths = {"svs": os.path.join(src, "s.svs"), "ndpi": os.path.join(src, "s.ndpi"),
             "tiff": os.path.join(src, "s.tiff"), "dicom": os.path.join(src, "dcm")}
    if os.path.exists(os.path.join(src, "done")):
        return {k: v for k, v in paths.items() if os.path.exists(v)}
    os.makedirs(src, exist_ok=True)
    make_svs(paths["svs"])
    make_ndpi(paths["ndpi"])
    make_generic_tiff(paths["tiff"])
    try:
        make_dicom(paths["dicom"])
    except ImportError:
        print("no wsidicomizer: DICOM cases skipped", file=sys.stderr)
        del paths["dicom"]
    open(os.path.join(src, "done"), "w").close()
    return paths


def run_all(work: str) -> dict[str, dict]:
    _WORK[0] = work
    src = os.environ.get("GOLDEN_SAMPLES") or os.path.join(work, "src")
    samples = make_samples(src)
    results = {}
    for name, inp, extra in cases(samples):
        run = os.path.join(work, name)
        os.makedirs(run)
        args = ["deid"]
        if "--in-place" in extra:
            local = os.path.join(run, "in", os.path.basename(inp))
            os.makedirs(os.path.dirname(local))
            shutil.copyfile(inp, local)
            args += [local, "--new-id", "R-1", *extra]
        else:
            out = os.path.join(run, "out")
            args += [inp, "-o", out, "--mkdir", "--new-id", "R-1", *extra]
        if "--in-place" not in extra and "--no-ocr" not in extra:
            args.append("--no-ocr")
        code, last = _cli(args, run)
        results[name] = {"exit": code, "stderr_last": last.replace(run, "<RUN>").replace(work, "<WORK>"),
                         "files": _tree(run, run, uid_free=name.endswith("to-dicom"))}
        print(f"{name}: exit {code}, {len(results[name]['files'])} files", file=sys.stderr)
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "check"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    mode, file = argv
    work = tempfile.mkdtemp(prefix="wsideid-golden-")
    try:
        results = run_all(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if mode == "record":
        with open(file, "w") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
        print(f"recorded {sum(len(r['files']) for r in results.values())} files of {len(results)} cases")
        return 0
    with open(file) as fh:
        want = json.load(fh)
    bad = 0
    for case in sorted(set(want) | set(results)):
        a, b = want.get(case), results.get(case)
        if a is None or b is None:
            print(f"{case}: {'new' if a is None else 'missing'} case")
            bad += 1
            continue
        for k in ("exit", "stderr_last"):
            if a[k] != b[k]:
                print(f"{case}: {k} {a[k]!r} -> {b[k]!r}")
                bad += 1
        for f in sorted(set(a["files"]) | set(b["files"])):
            if a["files"].get(f) != b["files"].get(f):
                print(f"{case}: {f} differs ({a['files'].get(f, 'absent')[:12]} -> {b['files'].get(f, 'absent')[:12]})")
                bad += 1
    print("identical" if not bad else f"{bad} difference(s)")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
