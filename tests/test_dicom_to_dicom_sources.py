"""--to-dicom on sources the converter cannot take: the message names what is missing."""

from __future__ import annotations

import pytest

from realdata import real
from wsideid.cli import main


def test_j2k_svs_without_mpp_says_what_is_missing(tmp_path, capsys):
    pytest.importorskip("wsidicomizer")
    svs = real("svs/tcga-cr-7395-01a-01-ts1.svs")  # JPEG 2000 tiles, no MPP in the description
    out = tmp_path / "out"
    out.mkdir()
    code = main(["deid", str(svs), "-o", str(out), "--new-id", "TCGA-1", "--to-dicom", "--detect", "off"])
    err = capsys.readouterr().err
    assert code != 0
    assert "lacks the pixel spacing" in err and "MPP" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # nothing published
