"""``--reencode-j2k`` on TCGA-style SVS (Aperio JPEG 2000 tiles, compression 33005).

Only the tiles a region touches are decoded, blanked and encoded again
reversibly; every other tile keeps its bytes (after the stream rule), and
the pixels read back through OpenSlide are the source's exactly outside the
region and the fill inside. The fixture is made by project code
(``wsideid.synth_vendors.make_j2k_svs``); the real TCGA sample runs too when
../shared/testdata is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import numpy as np
import openslide
import pytest
import tifffile

from realdata import real
from wsideid.cli import main
from wsideid.errors import VerificationFailed
from wsideid.jpeg import j2k
from wsideid.options import DeidOptions
from wsideid.pipeline import deidentify
from wsideid.tiff_family.redaction import RedactionError

REGION = (300, 200, 300, 200)


@pytest.fixture(scope="module")
def j2k_svs(tmp_path_factory) -> Path:
    from wsideid.synth_vendors import make_j2k_svs
    path = tmp_path_factory.mktemp("j2k") / "tcga-like.svs"
    make_j2k_svs(str(path))
    return path


def _tiles(path: Path, page: int) -> list[bytes]:
    with tifffile.TiffFile(path) as tf:
        p = tf.pages[page]
        with open(path, "rb") as fh:
            out = []
            for off, n in zip(p.dataoffsets, p.databytecounts):
                fh.seek(off)
                out.append(fh.read(n))
            return out


def _level0(path: Path) -> np.ndarray:
    s = openslide.OpenSlide(str(path))
    try:
        return np.asarray(s.read_region((0, 0), 0, s.dimensions))[..., :3]
    finally:
        s.close()


def _check_output(src: Path, res, region, fill: int) -> None:
    assert res.status == "published" and res.report.ok
    checks = {c.name: c for c in res.report.checks}
    assert checks["regions-blank"].ok and "re-encoded JPEG 2000 tile(s) decode exactly" in checks["regions-blank"].detail
    touched = res.plan.options["reencoded_j2k_tiles"]
    audit = json.loads(Path(res.audit_path).read_text())
    assert audit["options"]["reencoded_j2k_tiles"] == touched
    a, b = _tiles(src, 0), _tiles(Path(res.output), 0)
    for k, (ta, tb) in enumerate(zip(a, b)):
        if k in touched["ifd[0]"]:
            assert tb != ta and tb[:4] == b"\xff\x4f\xff\x51"
        else:
            assert tb == j2k.clean(ta)  # untouched: the source's bytes, less what the stream rule drops
    x, y, w, h = region
    pa, pb = _level0(src), _level0(Path(res.output))
    assert (pb[y:y + h, x:x + w] == fill).all()
    pa = pa.copy()
    pa[y:y + h, x:x + w] = fill
    assert np.array_equal(pa, pb)  # outside the region: the same pixels, exactly


def test_synthetic_j2k_svs_blanked_by_reencoding(j2k_svs, tmp_path):
    res = deidentify(j2k_svs, tmp_path, DeidOptions(regions=[REGION], reencode_j2k=True, detect="off",
                                                    verify="full"))
    _check_output(j2k_svs, res, REGION, 255)
    assert res.plan.options["reencoded_j2k_tiles"] == {"ifd[0]": [1, 2, 5, 6], "ifd[2]": [0, 1]}


def test_without_the_option_refused_naming_it(j2k_svs, tmp_path, capsys):
    with pytest.raises(RedactionError, match="--reencode-j2k"):
        deidentify(j2k_svs, tmp_path, DeidOptions(regions=[REGION], detect="off"))
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    out = tmp_path / "cli"
    assert main(["deid", str(j2k_svs), "-o", str(out), "--region", "300,200,300,200", "--detect", "off"]) == 2
    err = capsys.readouterr().err
    assert "--reencode-j2k" in err and len(err.strip().splitlines()) == 1
    assert main(["deid", str(j2k_svs), "-o", str(out), "--region", "300,200,300,200", "--detect", "off",
                 "--reencode-j2k", "--fill", "black"]) == 0


def test_verifier_catches_a_lossy_reencoding(j2k_svs, tmp_path, monkeypatch):
    from wsideid.jpeg import reencode

    def lossy(codestream, boxes, values):
        want = reencode.blank_array(imagecodecs.jpeg2k_decode(codestream), boxes, values)
        return j2k.clean(imagecodecs.jpeg2k_encode(want, level=30, codecformat="J2K")), want
    monkeypatch.setattr(reencode, "reencode_j2k", lossy)
    with pytest.raises(VerificationFailed, match="regions-blank"):
        deidentify(j2k_svs, tmp_path, DeidOptions(regions=[REGION], reencode_j2k=True, detect="off"))
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".svs"]


def test_reencoder_refuses_subsampled_components():
    from wsideid.jpeg.reencode import ReencodeError, reencode_j2k
    ycc = np.zeros((64, 64, 3), np.uint8)
    cs = bytearray(imagecodecs.jpeg2k_encode(ycc, level=0, codecformat="J2K"))
    pos = cs.find(b"\xff\x51")
    cs[pos + 40 + 3 + 1:pos + 40 + 3 + 3] = b"\x02\x02"  # component 2 subsampled 2x2 in SIZ
    with pytest.raises(ReencodeError, match="subsampled"):
        reencode_j2k(bytes(cs), [(0, 0, 8, 8)], (255, 255, 255))


def test_real_tcga_svs(tmp_path):
    svs = real("svs/tcga-cr-7395-01a-01-ts1.svs")
    region = (1000, 1000, 600, 400)
    res = deidentify(svs, tmp_path, DeidOptions(regions=[region], reencode_j2k=True, detect="off"))
    _check_output(svs, res, region, 255)
