"""Planted PHI, second round (attacker audit): places the planted matrix (tests/planted_matrix.py)
does not reach, judged by the same rule (tests/test_planted_matrix.py: refused or flagged with
nothing published, or published with no spelling of the needle anywhere in OUTDIR).

New here: ``--in-place`` runs (the slide is its own output: the whole folder is searched),
duplicate tag entries in one IFD, IFDs reached only from a private or Interoperability
pointer, strip-based full-resolution images, a slide and a batch whose *file names* are the
needle (the published OUTDIR, audit and mapping included), DICOM values that a grammar or
structure might keep (functional groups, dimension labels, code meanings under listed schemes,
an ICC profile, a public element sent as UN), and ``wsideid verify`` on a published output
into which the needle was put back afterwards (the verifier must never say clean).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from test_planted_matrix import input_holds_needle, leaks, run_and_judge, run_cli
from wsideid import cli


# ------------------------------------------------------------------ --in-place
def in_place_builders() -> dict[str, object]:
    """What a copy run already publishes clean, now rewritten in place: the gaps the wipe must
    zero, and the tags, blobs, EXIF and JPEG segments the new IFDs and edited tiles must drop."""
    blobs = {700: lambda s, i: pm.blob_entry(700, pm.XMP, 1), 34675: lambda s, i: pm.blob_entry(34675, pc.icc_profile(pm.NEEDLE)),
             33723: lambda s, i: pm.blob_entry(33723, pm.iptc(), 7), 315: pm._needle_only(315),
             316: pm._needle_only(316), 269: pm._needle_only(269), 285: pm._needle_only(285)}
    out = {}
    for fmt in ("svs", "ndpi", "tiff"):
        out[f"{fmt}-gap-after-last-ifd"] = pm.gap_after_last_ifd(fmt)
        if fmt != "ndpi":
            out[f"{fmt}-gap-after-header"] = pm.gap_after_header(fmt)
            out[f"{fmt}-gap-between-tiles"] = pm.gap_between_tiles(fmt)
        out[f"{fmt}-tags-and-jpeg-segments"] = pm.tiff_with(fmt, "all", blobs, pm.cycling_edit(0))
        out[f"{fmt}-jpegtables"] = pm.tiff_with(fmt, "all", {347: lambda s, i: pm.jpegtables_edit(
            ("com", "app", "after_eoi")[i % 3])(s, i)})
    out["ndpi-private-text-tags"] = pm.tiff_with("ndpi", "all", {t: pm._needle_only(t) for t in pm.NDPI_TEXT})
    return out


IN_PLACE = in_place_builders()


def run_in_place(src: Path, monkeypatch, *extra: str) -> tuple[int, str]:
    monkeypatch.setenv("WSIDEID_SECRET", "planted-more-secret-0123456789abcdef")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "--in-place", *extra])
    return rc, err.getvalue()


@pytest.mark.parametrize("name", list(IN_PLACE))
def test_in_place(name, tmp_path, monkeypatch):
    """Exit 0: no needle left in the slide or beside it (journal, temporary files). A refusal
    leaves one line that quotes nothing; a flag is re-run with --detect off on a fresh copy."""
    for attempt, extra in enumerate(((), ("--detect", "off"))):
        folder = tmp_path / f"run{attempt}"
        folder.mkdir()
        src = IN_PLACE[name](folder)
        assert input_holds_needle(src), f"{name}: the needle is not in the input (builder bug)"
        rc, err = run_in_place(src, monkeypatch, *extra)
        assert "Traceback" not in err and rc != 70, f"{name}: internal error: {err}"
        assert not pc.find_in_bytes(err.encode(), pm.SEARCH), f"{name}: a message quotes the needle: {err}"
        if rc == 0:
            hits = leaks(folder)
            assert not hits, f"{name}: needle left in the in-place output: {sorted(hits)}"
            return
        assert rc in (1, 2, 3), f"{name}: exit {rc}: {err}"
        if rc in (2, 3):
            return
