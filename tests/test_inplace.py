"""--in-place: crash-safe at every step, metadata-sized cost, same result as a copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import openslide
import pytest

from wsideid.tiff_family import inplace
from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth import PLANTED

from realdata import real


def _digest(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def _is_clean_deid(path, original):
    a, b = openslide.OpenSlide(str(original)), openslide.OpenSlide(str(path))
    assert b.level_dimensions == a.level_dimensions
    assert "label" not in b.associated_images and "macro" not in b.associated_images
    w, h = a.level_dimensions[-1]
    np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), a.level_count - 1, (w, h))),
                                  np.asarray(b.read_region((0, 0), b.level_count - 1, (w, h))))
    blob = open(path, "rb").read().lower()
    assert not [v for v in PLANTED if v.lower().encode() in blob]


@pytest.mark.parametrize("fmt", ["aperio", "hamamatsu", "generic-tiff"])
def test_in_place_matches_a_clean_copy(fmt, synth_slides, tmp_path):
    work = tmp_path / synth_slides[fmt].name
    shutil.copy(synth_slides[fmt], work)
    res = deidentify(work, None, DeidOptions(in_place=True, detect="off", new_id="R-5"))
    assert res.status == "published" and res.report.ok
    _is_clean_deid(work, synth_slides[fmt])
    assert not os.path.exists(inplace.journal_path(str(work)))


def test_real_svs_in_place(tmp_path):
    src = real("svs/CMU-1-Small-Region.svs")
    work = tmp_path / "s.svs"
    shutil.copy(src, work)
    os.chmod(work, 0o644)
    deidentify(work, None, DeidOptions(in_place=True, detect="off"))
    blob = work.read_bytes()
    assert b"CPAPERIOCS" not in blob and b"b414003d" not in blob
    props = openslide.OpenSlide(str(work)).properties
    assert "aperio.Date" not in props and props["aperio.MPP"] == "0.4990"


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", range(1, 9))
def test_crash_at_every_write_leaves_original_or_clean(crash_at, synth_slides, tmp_path, monkeypatch):
    """Fail the N-th write of the in-place run; the file must be the original
    or the clean result, and a rerun must end in the clean result."""
    src = synth_slides["aperio"]
    work = tmp_path / "slide.svs"
    shutil.copy(src, work)
    original = _digest(work)
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def failing_pwrite(fd, data, offset):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise Crash()
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(inplace.os, "pwrite", failing_pwrite)
    try:
        deidentify(work, None, DeidOptions(in_place=True, detect="off"))
        crashed = False
    except Crash:
        crashed = True
    monkeypatch.setattr(inplace.os, "pwrite", real_pwrite)
    if crashed:
        head = work.read_bytes()[:8]
        try:
            opened = openslide.OpenSlide(str(work))
            assert opened.level_count == 2  # a valid slide either way
        except openslide.OpenSlideError:
            pytest.fail("the file is broken after a crash")
        if os.path.exists(inplace.journal_path(str(work))):
            # a plain copy-mode run refuses until the in-place run is finished
            with pytest.raises(WsideidError, match="interrupted in-place"):
                deidentify(work, tmp_path, DeidOptions(detect="off"))
        assert head[:4] == b"II*\0"
    deidentify(work, None, DeidOptions(in_place=True, detect="off", overwrite=True))
    _is_clean_deid(work, src)
    assert _digest(work) != original


def test_sigkill_during_in_place(synth_slides, tmp_path):
    """Kill the real process at random moments; every state is original or clean."""
    src = synth_slides["hamamatsu"]
    rng = np.random.default_rng(5)
    for round_ in range(6):
        work = tmp_path / f"k{round_}.ndpi"
        shutil.copy(src, work)
        proc = subprocess.Popen([sys.executable, "-m", "wsideid.cli", "deid", str(work), "--in-place",
                                 "--detect", "off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.05, 0.9)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        o = openslide.OpenSlide(str(work))  # never broken
        assert o.properties["openslide.vendor"] == "hamamatsu"
        r = subprocess.run([sys.executable, "-m", "wsideid.cli", "deid", str(work), "--in-place", "--detect", "off"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _is_clean_deid(work, src)
