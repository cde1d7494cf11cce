"""Peak RSS of every process of a default run (issue 17: <= 100 MB on a real slide).

The figures are measured by ``bench/bench_rss.py`` (each Python process of
the run logs its own VmHWM at exit; other children are sampled; wait4 gives
the largest of the tree) and printed here for each real slide; they are not
asserted, since a threshold a few MB under the limit would be a flaky test.
What is asserted: the run succeeds and each of its processes was measured;
memory does not grow with the slide (0.2 GB against 1 GB, a clear margin);
the pieces that moved memory out of the main process still fail closed (the
readers check's child) or answer exactly as before (the code meanings).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from realdata import real

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_rss  # noqa: E402

GROWTH_MB = 30  # 0.2 -> 1 GB: how much the detectors overlap the copy (scheduling), not data; a level held whole would be GBs
EXIT_OK, EXIT_FINDINGS = 0, 1


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.mark.parametrize("rel", bench_rss.REAL_SLIDES)
def test_real_slide_default_run_peak_rss(rel, tmp_path):
    src = real(rel)
    out = tmp_path / "out"
    out.mkdir()
    run = bench_rss.measure(bench_rss.deid_argv(src, out, []), env=_env())
    print(f"{rel}: peak RSS MB by process {({k: round(v, 1) for k, v in run.peaks.items()})}, "
          f"largest (wait4) {run.tree_max:.1f}")
    assert run.exit_code in (EXIT_OK, EXIT_FINDINGS), run.stderr[-600:]
    assert run.counts.get("main") == 1 and run.peaks["main"] > 20  # the CLI itself was measured
    assert run.tree_max + 1 >= max(run.peaks.values())  # wait4 sees every child the log saw
    if rel.startswith("dicom/"):  # wsidicom and OpenSlide ran in their child, not in the CLI
        assert run.counts.get("readers-child") == 1


def test_default_run_memory_does_not_grow_with_the_slide(tmp_path):
    """Detectors on: a 1 GB slide peaks where a 0.2 GB one does (levels are scanned at most
    4 MP, tiles streamed), in the main process and in every child."""
    peaks = {}
    for gb in (0.2, 1.0):
        src = bench_rss.build_synthetic(tmp_path, gb)
        out = tmp_path / f"out{gb:g}"
        out.mkdir()
        run = bench_rss.measure(bench_rss.deid_argv(src, out, []), env=_env())
        assert run.exit_code in (EXIT_OK, EXIT_FINDINGS), run.stderr[-600:]
        peaks[gb] = run.peaks
        src.unlink()
    print("peak RSS MB by slide GB and process:", peaks)
    for role, mb in peaks[1.0].items():
        assert mb - peaks[0.2].get(role, 0.0) <= GROWTH_MB, (role, peaks)


def test_code_meanings_read_as_text_equal_pydicoms_table():
    """``code_index`` reads pydicom's generated table as text (5 MB instead of 30): every code,
    every meaning, and the SRT codes mapped from SCT, exactly as importing it gives them."""
    from wsideid.dicom import code_index
    parsed = code_index._parsed()
    assert parsed is not None and len(parsed) >= code_index.MIN_CODES
    assert parsed == code_index._imported()
    from pydicom.sr._concepts_dict import concepts
    assert not any(code_index._SEP in m for names in concepts.values() for by_value in names.values()
                   for m, _cids in by_value.values())  # the separator splits meanings back exactly
    assert code_index.meanings("DCM", "113100") == {"Basic Application Confidentiality Profile"}
    long = code_index.meanings("SCT", "373187008")  # written as adjacent literals over four lines
    assert len(long) == 1 and next(iter(long)).startswith("pT4b: Tumor of any size with edema (including peau")


def test_code_index_does_not_import_the_table():
    import subprocess
    code = ("import sys; sys.path.insert(0, %r); from wsideid.dicom import code_index; code_index.index(); "
            "print('pydicom.sr' in sys.modules, 'pydicom.sr._concepts_dict' in sys.modules)") % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_readers_child_that_dies_fails_closed(monkeypatch):
    """A readers child that cannot run is a failed check, not 'input not readable: skipped'."""
    from wsideid.dicom import readers
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a real process that exits 1
    with pytest.raises(readers.ReadersFailed):
        readers.start([(readers.Reader.OPENSLIDE, ["/nonexistent.dcm"])]).result()


def test_dicom_run_with_dead_readers_child_is_not_published(monkeypatch, tmp_path):
    from test_dicom_fixtures import dicom_file, run
    from wsideid.enums import DetectMode
    from wsideid.errors import WsideidError
    src = dicom_file("wsi2dcm_jpeg")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(WsideidError) as exc:
        run(src, tmp_path / "out", detect=DetectMode.OFF)
    assert "reader process" in str(exc.value) or "wsidicom" in str(exc.value)
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]


def test_readers_child_answers_like_the_readers(tmp_path):
    """The child's answers are the readers' own: levels of a real DICOM file, and an error
    (not levels) for a file that is not a slide."""
    from wsideid.dicom import readers
    src = real("dicom/wsi2dcm_jpeg.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a slide")
    w, o, bad = readers.start([(readers.Reader.WSIDICOM, [str(src)]), (readers.Reader.OPENSLIDE, [str(src)]),
                               (readers.Reader.OPENSLIDE, [str(junk)])]).result()
    assert w.levels and w.levels[0] == (957, 715) and w.error is None
    assert o.levels and o.levels[0] == (957, 715)
    assert bad.levels is None and bad.error
