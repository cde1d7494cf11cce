"""--in-place never leaves the input changed unless the result verified clean.

The hostile harness found slides whose in-place rewrite failed verification *after* the header
switch: the slide was left rewritten, unverified, with its journal (a J2K SVS whose
ImageDescription has TIFF type 0, a BIF level with an absurd SamplesPerPixel). Now:
- every byte the wipe zeroes is kept in an undo file before the switch, and a failed
  verification (or any exception) puts the original back, byte for byte (hashes below);
- a run killed after the switch leaves its journal; the next in-place run restores the
  original from it before it starts again (a copy-mode run refuses the slide meanwhile);
- the reader check of an in-place run judges the output against OpenSlide's view of the
  input taken before the switch (the J2K mutant: the rewrite then verifies as a copy does);
- a SamplesPerPixel that disagrees with BitsPerSample is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wsideid.checks import Check, CheckStatus
from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.tiff_family import inplace

from fuzz.structural import _patch, _uint, tiff_layout

HERE = Path(__file__).resolve().parent


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _folder(p: Path) -> list[str]:
    return sorted(os.listdir(p.parent))


def _entry(path: Path, ifd: int, tag: int) -> tuple[int, int, str]:
    """(position of the entry, count/value field width, byte order) of one IFD entry."""
    lay = tiff_layout(path)
    return lay.entry_pos[(ifd, tag)], (8 if lay.kind == "bigtiff" else 4), lay.bo


def _set_type(path: Path, ifd: int, tag: int, t: int) -> None:
    pos, _, bo = _entry(path, ifd, tag)
    _patch(path, pos + 2, _uint(bo, 2, t))


def _set_value(path: Path, ifd: int, tag: int, v: int) -> None:
    pos, cw, bo = _entry(path, ifd, tag)
    _patch(path, pos + 4 + cw, _uint(bo, cw, v))


def _in_place(p: Path, tmp: Path):
    return deidentify(p, None, DeidOptions(in_place=True, detect="off", review_dir=str(tmp / "review")))


def _refused_unchanged(p: Path, tmp: Path, match: str) -> None:
    before, listing = _sha(p), _folder(p)
    with pytest.raises(WsideidError, match=match):
        _in_place(p, tmp)
    assert _sha(p) == before, "the slide changed although the run failed"
    assert _folder(p) == listing, "a journal or undo file was left beside the slide"


@pytest.fixture
def j2k_svs(tmp_path):
    from wsideid.synth_vendors import make_j2k_svs
    p = tmp_path / "s" / "slide.svs"
    p.parent.mkdir()
    make_j2k_svs(str(p), 512, 512)
    return p


@pytest.fixture
def aperio(tmp_path, synth_slides):
    p = tmp_path / "s" / "slide.svs"
    p.parent.mkdir()
    shutil.copy(synth_slides["aperio"], p)
    return p


def test_j2k_svs_with_untyped_description_rewrites_as_a_copy_publishes(j2k_svs, tmp_path):
    """Hostile mutant ifd0.tag270.type=0: OpenSlide claims no format for the input, so the
    reader check is not applicable to a copy; in place it compared the rewritten file with
    itself, which OpenSlide claims (generic TIFF, J2K) and cannot open, and failed after the
    switch. The input's view is now taken before the switch: the rewrite verifies."""
    _set_type(j2k_svs, 0, 270, 0)
    res = _in_place(j2k_svs, tmp_path)
    assert res.status == "published" and res.report.ok
    assert res.report.result(Check.READER).status is CheckStatus.NOT_APPLICABLE
    assert _folder(j2k_svs) == ["slide.svs", "slide.svs.audit.json"]


@pytest.mark.parametrize("value", [0xEC1A, 0xFFFFFFFF])
def test_bif_level_with_absurd_samples_per_pixel_is_refused_before_any_write(value, tmp_path):
    """Hostile mutant ifd4.tag277.offset=0xec1a: OpenSlide opened the input (ventana) and not
    its rewrite, found after the switch. SamplesPerPixel disagreeing with BitsPerSample is
    damage: refused when the slide is read, in either mode."""
    from wsideid.synth_vendors import make_bif
    p = tmp_path / "s" / "slide.bif"
    p.parent.mkdir()
    make_bif(str(p), 2, 2)
    _set_value(p, 4, 277, value)
    _refused_unchanged(p, tmp_path, "SamplesPerPixel .* BitsPerSample")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WsideidError, match="SamplesPerPixel"):
        deidentify(p, out, DeidOptions(detect="off", review_dir=str(tmp_path / "review")))


@pytest.mark.parametrize("ifd,value", [(1, 1), (2, 0xFFFFFFFF)])
def test_philips_odd_new_subfile_type_publishes_verified_or_leaves_the_slide(ifd, value, tmp_path):
    """The third mutant of the harness's list (a Philips level with an odd NewSubfileType) did not
    fail after the switch on this tree (every value tried publishes verified or is refused first);
    kept as the promise: verified and clean, or the slide as it was."""
    from wsideid.synth_philips import make_philips_tiff
    p = tmp_path / "s" / "slide.tiff"
    p.parent.mkdir()
    make_philips_tiff(str(p))
    _set_value(p, ifd, 254, value)
    before = _sha(p)
    try:
        res = _in_place(p, tmp_path)
    except WsideidError:
        assert _sha(p) == before and _folder(p) == ["slide.tiff"]
        return
    assert res.report.ok and not os.path.exists(inplace.journal_path(str(p)))
    assert not os.path.exists(inplace.undo_path(str(p)))


def _failing_verify(monkeypatch, how: str) -> None:
    """Verification of the rewritten slide fails (a check reports failure, or raises)."""
    from wsideid.checks import Check
    from wsideid.tiff_family import verify as tv
    real = tv.verify_tiff

    def verify_tiff(*a, **kw):
        if how == "raise":
            raise RuntimeError("verifier crashed")
        rep = real(*a, **kw)
        rep.record(Check.PLAN_HELD, False, "injected failure", part="test")
        return rep

    monkeypatch.setattr(tv, "verify_tiff", verify_tiff)


def test_failed_verification_after_the_switch_puts_the_original_back(aperio, tmp_path, monkeypatch):
    _failing_verify(monkeypatch, "fail")
    _refused_unchanged(aperio, tmp_path, "failed verification; the slide was put back as it was")


def test_verifier_exception_after_the_switch_puts_the_original_back(aperio, tmp_path, monkeypatch):
    _failing_verify(monkeypatch, "raise")
    before, listing = _sha(aperio), _folder(aperio)
    with pytest.raises(RuntimeError, match="verifier crashed"):
        _in_place(aperio, tmp_path)
    assert _sha(aperio) == before and _folder(aperio) == listing


_CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from wsideid.tiff_family import verify as tv
how = sys.argv[1]
if how == "kill-at-verify":
    def verify_tiff(*a, **kw):
        os.kill(os.getpid(), signal.SIGKILL)
    tv.verify_tiff = verify_tiff
elif how == "fail":
    from wsideid.checks import Check
    real = tv.verify_tiff
    def verify_tiff(*a, **kw):
        rep = real(*a, **kw)
        rep.record(Check.PLAN_HELD, False, "injected failure", part="test")
        return rep
    tv.verify_tiff = verify_tiff
from wsideid.cli import main
sys.exit(main(["deid", sys.argv[2], "--in-place", "--detect", "off", "--review-dir", sys.argv[3]]))
"""


def _child(how: str, p: Path, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD.format(tests=str(HERE)), how, str(p), str(tmp / "review")],
                          capture_output=True, text=True, timeout=300)


def test_cli_failed_verification_one_line_nonzero_exit_original_bytes(aperio, tmp_path):
    before = _sha(aperio)
    r = _child("fail", aperio, tmp_path)
    assert r.returncode in (2, 3), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if not ln.startswith("wsideid: warning:")]
    assert len(errors) == 1 and errors[0].startswith("wsideid: error: in-place result failed verification"), r.stderr
    assert _sha(aperio) == before and _folder(aperio) == ["slide.svs"]


def test_sigkill_after_the_switch_is_undone_by_the_next_run(aperio, tmp_path):
    """Killed while verifying (switched and wiped, not yet verified): the journal and undo file
    stay; a copy-mode run refuses the slide; recovery gives the original bytes back; the next
    in-place run then publishes a verified result."""
    before = _sha(aperio)
    r = _child("kill-at-verify", aperio, tmp_path)
    assert r.returncode == -signal.SIGKILL
    jp, up = inplace.journal_path(str(aperio)), inplace.undo_path(str(aperio))
    assert os.path.exists(jp) and os.path.exists(up) and _sha(aperio) != before
    with pytest.raises(WsideidError, match="interrupted in-place"):
        deidentify(aperio, tmp_path, DeidOptions(detect="off"))
    assert inplace.recover(str(aperio)).startswith("rolled back")
    assert _sha(aperio) == before and not os.path.exists(jp) and not os.path.exists(up)
    res = _in_place(aperio, tmp_path)
    assert res.report.ok and _sha(aperio) != before and _folder(aperio) == ["slide.svs", "slide.svs.audit.json"]


def test_recovery_refuses_a_damaged_undo_file(aperio, tmp_path):
    r = _child("kill-at-verify", aperio, tmp_path)
    assert r.returncode == -signal.SIGKILL
    up = Path(inplace.undo_path(str(aperio)))
    blob = bytearray(up.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    up.write_bytes(bytes(blob))
    with pytest.raises(WsideidError, match="undo file .* damaged"):
        inplace.recover(str(aperio))
    assert os.path.exists(inplace.journal_path(str(aperio)))  # kept: nothing is guessed


def test_recovery_after_a_verified_run_keeps_the_result(aperio, tmp_path):
    """Killed after the journal was marked verified, before its files were removed: the next
    run removes them and keeps the verified result as it is."""
    res = _in_place(aperio, tmp_path)
    assert res.report.ok
    after = _sha(aperio)
    jp, up = inplace.journal_path(str(aperio)), inplace.undo_path(str(aperio))
    Path(up).write_bytes(b"old label bytes")
    Path(jp).write_text(json.dumps({"kind": "classic", "original_size": 1, "old_pointer": "08000000",
                                    "new_pointer": "00000000", "wipe": [[0, 1]], "undo_sha256": "0" * 64,
                                    "verified": True}))
    assert inplace.recover(str(aperio)).startswith("cleaned up")
    assert _sha(aperio) == after and not os.path.exists(jp) and not os.path.exists(up)
