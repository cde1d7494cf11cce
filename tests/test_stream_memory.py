"""Memory stays flat when the stream rule edits every tile (issue 11 follow-up).

The rule changes every tile of some real slides (a J2K encoder comment in
each TCGA tile, a COM in each tile of some writers). Edited tiles used to be
held as bytes until written, so memory grew with the slide. Each run here is
a child process that reports its own peak RSS (VmHWM, which exec resets, so
nothing of pytest is counted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realdata import real

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 100  # the project's budget at any slide size
GROWTH_MB = 20  # between an 8x smaller and larger slide: noise, not data

CHILD = r"""
import sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            sys.stderr.write("PEAK_KB %s\n" % line.split()[1])
from wsideid.cli import main
try:
    code = main(sys.argv[1:])
finally:
    peak()
sys.exit(code)
"""

COMMENT = b"Kakadu-v6.4 encoder note: Jane Doe MRN 88812345"


def _deid(src: Path, out: Path | None, *extra: str) -> tuple[int, dict]:
    where = ["--in-place"] if out is None else ["-o", str(out)]
    if out is not None:
        out.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", CHILD, "deid", str(src), *where, "--detect", "off",
                           "--new-id", "R-1", "--json", *extra], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-800:]
    kb = [int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("PEAK_KB")]
    return kb[-1] // 1024, json.loads(proc.stdout)


def _tiles_clean(path: Path, needle: bytes) -> tuple[int, int]:
    """(pyramid tiles, tiles holding ``needle`` or a COM segment) in the output."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors import tiff_base
    tf = read_tiff(str(path))
    total = dirty = 0
    with open(path, "rb") as fh:
        for ifd in tf.ifds:
            data = tiff_base.image_data(ifd, tf.byteorder)
            for o, c in zip(data.src_offsets.tolist(), data.src_counts.tolist()):
                raw = os.pread(fh.fileno(), c, o)
                total += 1
                dirty += needle in raw or b"\xff\xfe" in raw[:64]
    return total, dirty


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    from wsideid.synth_large import build_svs
    d = tmp_path_factory.mktemp("big")
    out = {}
    for mb in (24, 192):
        p = d / f"every-tile-{mb}.svs"
        build_svs(str(p), mb, tile_comment=COMMENT)
        out[mb] = p
    return out


def test_every_tile_edited_memory_does_not_grow(slides, tmp_path):
    peaks = {}
    for mb, src in slides.items():
        peaks[mb], res = _deid(src, tmp_path / f"o{mb}")
        output = Path(res["output"])
        total, dirty = _tiles_clean(output, b"Jane Doe")
        assert total > 100 and dirty == 0
        assert os.path.getsize(output) < os.path.getsize(src)  # every tile lost its comment
    print("peak RSS MB by slide MB:", peaks)
    assert max(peaks.values()) <= LIMIT_MB, peaks
    assert peaks[192] - peaks[24] <= GROWTH_MB, peaks


def test_every_tile_edited_in_place_memory_does_not_grow(slides, tmp_path):
    import shutil
    peaks = {}
    for mb, src in slides.items():
        copy = tmp_path / src.name
        shutil.copyfile(src, copy)
        peaks[mb], _ = _deid(copy, None)
        total, dirty = _tiles_clean(copy, b"Jane Doe")
        assert total > 100 and dirty == 0
        with open(copy, "rb") as fh:
            assert b"Jane Doe" not in fh.read()  # old tile versions wiped too
    print("peak RSS MB by slide MB:", peaks)
    assert max(peaks.values()) <= LIMIT_MB, peaks
    assert peaks[192] - peaks[24] <= GROWTH_MB, peaks


def test_tcga_j2k_every_tile_edited(tmp_path):
    """The real TCGA slide: each J2K tile carries a 108-byte encoder COM, dropped from every one."""
    from wsideid.jpeg import j2k
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors import tiff_base
    src = real("svs/tcga-cr-7395-01a-01-ts1.svs")
    peak, res = _deid(Path(src), tmp_path / "o", "--verify", "full")
    print("TCGA peak RSS MB:", peak)
    assert peak <= LIMIT_MB
    out = read_tiff(res["output"])
    tf = read_tiff(str(src))
    with open(src, "rb") as fs, open(res["output"], "rb") as fo:
        edited = 0
        for s_ifd, o_ifd in zip([i for i in tf.ifds if i.value(259) == 33005],
                                [i for i in out.ifds if i.value(259) == 33005]):
            sd, od = tiff_base.image_data(s_ifd, tf.byteorder), tiff_base.image_data(o_ifd, out.byteorder)
            for t in range(len(sd.src_offsets)):
                a = os.pread(fs.fileno(), int(sd.src_counts[t]), int(sd.src_offsets[t]))
                b = os.pread(fo.fileno(), int(od.src_counts[t]), int(od.src_offsets[t]))
                assert b == j2k.clean(a) and j2k.is_clean(b)
                edited += a != b
        assert edited == 252 + 63  # every tile of both levels
    assert np.isclose(os.path.getsize(res["output"]), os.path.getsize(src), rtol=0.2)
