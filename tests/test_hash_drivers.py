"""DICOM and MIRAX outputs are hashed like TIFF ones (``wsideid/hashing.py``): BLAKE3 by
default, ``--hash sha256`` when asked, nothing with ``--hash none``; the audit names the
algorithm and its hashes are the files' own."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import blake3
import pytest

from wsideid.hashing import output_parts
from wsideid.options import DeidOptions
from wsideid.pipeline import deidentify

DIGEST = {"blake3": lambda b: blake3.blake3(b).hexdigest(), "sha256": lambda b: hashlib.sha256(b).hexdigest()}


def _dicom(tmp_path: Path) -> Path:
    from test_dicom_fixtures import dicom_file
    return dicom_file("wsi2dcm_jpeg")


def _mrxs(tmp_path: Path) -> Path:
    from wsideid.mrxs.synth import make_mrxs
    (tmp_path / "src").mkdir()
    make_mrxs(str(tmp_path / "src" / "s.mrxs"))
    return tmp_path / "src" / "s.mrxs"


def _tree(path: str, algo: str) -> str:
    h = blake3.blake3() if algo == "blake3" else hashlib.sha256()
    for name, f in output_parts(path):
        if name:
            h.update(name.encode() + b"\0")
        h.update(open(f, "rb").read())
    return h.hexdigest()


@pytest.mark.parametrize("algo", [None, "sha256", "blake3"])
@pytest.mark.parametrize("make", [_dicom, _mrxs], ids=["dicom", "mirax"])
def test_output_hashed_with_the_runs_algorithm(make, algo, tmp_path):
    src = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    opts = DeidOptions(new_id="R-7", detect="off", **({"hash": algo} if algo else {}))
    res = deidentify(src, out, opts)
    want = algo or "blake3"  # the default, as for TIFF
    audit = json.loads(Path(res.audit_path).read_text())
    assert audit["hash_algorithm"] == want and res.hash_algorithm == want
    assert not ({"sha256", "blake3"} - {want}) & set(audit)  # one table, named by its algorithm
    if res.format == "dicom":
        files = [res.output] if os.path.isfile(res.output) else sorted(
            os.path.join(res.output, n) for n in os.listdir(res.output))
        assert sorted(v for k, v in audit[want].items()) == sorted(DIGEST[want](open(f, "rb").read()) for f in files)
    else:
        assert audit[want] == {"output": _tree(res.output, want)}


@pytest.mark.parametrize("make", [_dicom, _mrxs], ids=["dicom", "mirax"])
def test_hash_none_writes_no_hash(make, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(make(tmp_path), out, DeidOptions(new_id="R-7", detect="off", hash="none"))
    assert res.sha256 == {} and res.report.ok
    assert json.loads(Path(res.audit_path).read_text())["hash_algorithm"] == "none"
