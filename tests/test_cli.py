"""The command line as a user meets it: exit codes, one-line errors, no output on failure."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from realdata import real

WSIDEID = [sys.executable, "-m", "wsideid.cli"]


def run(*args, env=None):
    return subprocess.run(WSIDEID + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def assert_clean_failure(proc, outdir):
    assert proc.returncode not in (0, 1), proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("wsideid: error:")
    assert [p for p in os.listdir(outdir)] == []


def test_help_on_every_command():
    for cmd in ([], ["inspect"], ["deid"], ["verify"], ["scan"], ["demo"]):
        p = run(*cmd, "--help")
        assert p.returncode == 0 and "usage" in p.stdout


def test_deid_and_inspect_json(synth_slides, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", synth_slides["generic-tiff"], "-o", out, "--new-id", "R-1", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["status"] == "published" and all(c["ok"] for c in d["checks"])
    p = run("inspect", out / "R-1.tiff", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["format"] == "generic-tiff"
    p = run("verify", synth_slides["generic-tiff"], out / "R-1.tiff", "--new-id", "R-1", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["ok"]


def test_verify_detects_a_tampered_output(synth_slides, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", synth_slides["aperio"], "-o", out, "--detect", "off", "--json")
    assert p.returncode == 0, p.stderr
    bad = out / os.path.basename(json.loads(p.stdout)["output"])  # a pseudonym, not the input's name
    data = bytearray(bad.read_bytes())
    data[-100:] = b"DOE^JANE " * 11 + b"X"  # PHI back into pixel bytes of the last tile
    bad.write_bytes(bytes(data))
    p = run("verify", synth_slides["aperio"], bad)
    assert p.returncode == 3 and "FAIL" in p.stdout


def _classic(entries, next_ifd=0):
    body = struct.pack("<H", len(entries))
    for tag, typ, count, val in entries:
        body += struct.pack("<HHI", tag, typ, count) + val.ljust(4, b"\0")
    return b"II*\0" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd)


BAD_INPUTS = {
    "not_tiff.svs": b"this is a text file pretending to be a slide\n" * 10,
    "empty.svs": b"",
    "ifd_loop.svs": _classic([(256, 4, 1, struct.pack("<I", 1))], next_ifd=8),
    "past_end.tif": _classic([(270, 2, 20, struct.pack("<I", 99999))]) + bytes(64),
    "stripped_unknown_vendor.tif": None,  # built below
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_one_line_error_no_output(name, tmp_path):
    src = tmp_path / name
    if BAD_INPUTS[name] is None:
        import numpy as np
        import tifffile
        tifffile.imwrite(src, np.zeros((32, 32), np.uint8))  # stripped, no vendor
    else:
        src.write_bytes(BAD_INPUTS[name])
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", src, "-o", out)
    assert_clean_failure(p, out)


def test_truncated_real_slide(tmp_path):
    src = real("svs/CMU-1-Small-Region.svs")
    data = src.read_bytes()
    for cut in (len(data) // 3, len(data) - 5000, 100):
        bad = tmp_path / f"cut{cut}.svs"
        bad.write_bytes(data[:cut])
        out = tmp_path / f"out{cut}"
        out.mkdir()
        assert_clean_failure(run("deid", bad, "-o", out), out)


def test_missing_input_and_outdir(tmp_path):
    p = run("deid", tmp_path / "nope.svs", "-o", tmp_path)
    assert p.returncode == 2 and "does not exist" in p.stderr
    src = tmp_path / "x.svs"
    src.write_bytes(b"x")
    p = run("deid", src, "-o", tmp_path / "missing")  # OUTDIR is created (issue 16); the junk input fails
    assert p.returncode == 2 and "not a supported slide" in p.stderr and (tmp_path / "missing").is_dir()
    (tmp_path / "afile").write_bytes(b"")
    p = run("deid", src, "-o", tmp_path / "afile" / "sub")
    assert p.returncode == 2 and "cannot create the output folder" in p.stderr


def test_shift_without_secret_is_refused(synth_slides, tmp_path):
    p = run("deid", synth_slides["aperio"], "-o", tmp_path, "--dates", "shift", "--subject", "p1",
            env={"WSIDEID_SECRET": ""})
    assert p.returncode == 2 and "secret" in p.stderr and os.listdir(tmp_path) == []


def test_secret_from_env_is_never_printed(synth_slides, tmp_path):
    secret = "a-very-secret-key-0123456789"
    p = run("deid", synth_slides["aperio"], "-o", tmp_path, "--dates", "shift", "--subject", "p1", "--json",
            "--detect", "off", env={"WSIDEID_SECRET": secret})
    assert p.returncode == 0, p.stderr
    assert secret not in p.stdout + p.stderr
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes()


def test_unsafe_new_id_is_refused(synth_slides, tmp_path):
    for bad in ("../escape", "/abs", "a/b", ".."):
        p = run("deid", synth_slides["aperio"], "-o", tmp_path, "--new-id", bad)
        assert p.returncode == 2 and os.listdir(tmp_path) == []


def test_scan_exit_codes(tmp_path):
    p = run("scan", real("labels/mi_barcode_datamatrix.jpeg"), "--no-ocr", "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["results"][0]["images"][0]["findings"][0]["value"] == "123455b45GR4"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0\1\2")
    assert run("scan", junk).returncode == 2


def test_scan_reads_a_dicom_label_instance():
    p = run("scan", real("dicom/mi_test_wsi_label_barcodevalue.dcm"), "--no-ocr", "--json")
    assert p.returncode == 1, p.stderr
    images = json.loads(p.stdout)["results"][0]["images"]
    assert [f["value"] for f in images[0]["findings"]] == ["Wikipedia"] and images[0]["role"] == "label"


def test_deid_of_one_file_does_not_import_the_batch_modules(synth_slides, tmp_path):
    """A file is never a slide folder: ``deid FILE`` does not import the folder runner and its
    batch modules (issue 14: start-up is part of every run's cost)."""
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys, wsideid.cli; rc = wsideid.cli.main(['deid', %r, '-o', %r, '--detect', 'off', '--new-id', 'R-1']);"
            " print(rc, sorted(m for m in sys.modules if m.startswith('wsideid.batch')))") % (str(synth_slides["aperio"]), str(out))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.splitlines()[-1] == "0 []", (p.stdout, p.stderr)


def test_python_dash_m_runs_the_cli(tmp_path):
    """`python -m wsideid` is the console script: same help, same one-line refusal and exit code."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    shown = subprocess.run([sys.executable, "-m", "wsideid", "--help"], capture_output=True,
                           text=True, env=env, timeout=120)
    assert shown.returncode == 0 and "deid" in shown.stdout
    missing = tmp_path / "absent.svs"
    refused = subprocess.run([sys.executable, "-m", "wsideid", "deid", str(missing), "-o",
                              str(tmp_path / "out")], capture_output=True, text=True, env=env,
                             timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "Traceback" not in refused.stderr
