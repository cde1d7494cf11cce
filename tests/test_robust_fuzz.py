"""Mutation fuzzing of inspect and deid on real and synthetic slides (see tests/fuzz/harness.py).

The normal suite runs a short, derandomised budget so that it is stable
and fast; ``bench/fuzz_long.py`` runs the same harness with fresh random
cases for as long as you like. Every crasher either run finds is pinned in
CRASHERS below, with the bug it exposed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.harness import N_OPS, Violation, describe, mutate, run_case
from fuzz.seeds import all_seeds, synthetic_seeds

EXAMPLES = int(os.environ.get("WSIDEID_FUZZ_EXAMPLES", "250"))

ops_strategy = st.lists(st.tuples(st.integers(0, N_OPS - 1), st.integers(0, 2 ** 16), st.integers(0, 2 ** 16)),
                        min_size=1, max_size=4)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, 10 ** 6), ops=ops_strategy)
def test_mutants_fail_closed(which, ops, tmp_path_factory):
    """Every mutant either publishes a verified, PHI-free output or fails with a one-line WsideidError."""
    seeds = all_seeds()
    seed = seeds[which % len(seeds)]
    work = tmp_path_factory.mktemp("fuzz")
    try:
        run_case(mutate(seed, ops), work, "input" + seed.suffix, seed.planted, timeout=20)
    except Violation as v:
        raise AssertionError(f"{describe(seed.name, ops)}: {v}") from None


# (seed, ops, bug it exposed). Real-slide seeds are skipped when ../shared/testdata is absent.
CRASHERS = [
    ("synth.svs", [(7, 37725, 34000)],
     "a fill byte (FF FF) in place of an APP1 marker let the header walk skip a segment holding PHI"),
    ("synth.svs", [(6, 54963, 24376), (4, 18078, 15342), (2, 33223, 59345), (2, 56481, 30317), (7, 57820, 57953)],
     "an unknown Compression value let a JPEG tile with a COM segment through as opaque data"),
    ("synth.svs", [(3, 25546, 34975)],
     "the removed Photoshop block renumbered as NewSubfileType (type UNDEFINED) was kept and published"),
    ("synth.svs", [(6, 23381, 51187), (7, 49252, 20709), (9, 4133, 37347)],
     "a JPEG tile whose first byte was corrupted skipped the header scan: its COM text was published"),
    ("synth.tiff", [(0, 11718, 58950), (2, 11345, 63058), (6, 53696, 41442), (2, 48030, 38164)],
     "a kept ReferenceBlackWhite pointed into the ImageDescription: part of the removed text published"),
    ("synth.svs", [(3, 43783, 164), (9, 62079, 14180), (0, 1137, 25873)],
     "Compression tag lost: JPEG tiles with COM text copied as 'uncompressed pixels', PHI published"),
    ("synth.tiff", [(0, 27661, 18116), (2, 47300, 5372)],
     "TileWidth 2^31-1: OpenSlide aborted the process allocating 1 TB during verification"),
    ("synth.svs", [(5, 4887, 3763), (5, 54722, 21471)],
     "tile offsets pointed at the ImageDescription: PHI published as 'pixels', all checks green"),
    ("synth.ndpi", [(5, 16563, 8501), (0, 39386, 41110)],
     "a kept tag retyped LONG8 in an NDPI: struct.error in the NDPI writer"),
    ("openslide-python_boxes.tiff", [(1, 56526, 53506)],
     "SamplesPerPixel with 2 values: TypeError in image_info"),
    ("openslide-python_small.svs", [(0, 27315, 10196), (6, 16470, 24423)],
     "Compression of an unsupported type (no values): IndexError in image_info"),
    ("synth.svs", [(7, 564, 18485), (7, 26528, 40537), (6, 37991, 18138)],
     "a non-marker byte right after SOI ended the tile-header walk as 'clean': the tile's COM text was published"),
    ("openslide-python_small.svs", [(7, 6248, 28078)],
     "corrupt JPEG tile at the lowest level: OpenSlideError escaped verification"),
    ("tcga-cr-7395-01a-01-ts1.svs", [(7, 5793, 23170)],
     "corrupt JPEG tile: OpenSlideError escaped verification"),
    ("openslide-python_boxes.tiff", [(2, 41398, 9068)],
     "corrupt deflate strip: OpenSlideError escaped verification"),
    ("synth.svs", [(0, 7, 215)],
     "SamplesPerPixel retyped RATIONAL (one value, a pair): TypeError in the samples check"),
]


@pytest.mark.parametrize("seed_name,ops,bug", CRASHERS, ids=[c[0] + ":" + c[2][:30] for c in CRASHERS])
def test_crashers_stay_fixed(seed_name, ops, bug, tmp_path):
    seeds = {s.name: s for s in all_seeds()}
    if seed_name not in seeds:
        pytest.skip(f"{seed_name} not available")
    seed = seeds[seed_name]
    outcome = run_case(mutate(seed, ops), tmp_path, "input" + seed.suffix, seed.planted)
    assert outcome.kind in ("published", "flagged", "error")


def test_mutations_change_the_bytes():
    """The harness is only worth something if its mutations hit: most ops must alter a seed."""
    seed = synthetic_seeds()[0]
    changed = sum(mutate(seed, [(op, a, 7)]) != seed.data for op in range(N_OPS) for a in (1, 77, 301))
    assert changed >= N_OPS * 3 - 3


def test_cli_on_mutants(tmp_path):
    """A few mutants through the real command line: exit 0/1 with an output, or one stderr line and nothing."""
    seed = synthetic_seeds()[0]
    cases = [[(5, 4887, 3763), (5, 54722, 21471)], [(1, 3, 9)], [(7, 2, 3)], [(4, 0, 1)]]
    for k, ops in enumerate(cases):
        src = tmp_path / f"m{k}.svs"
        src.write_bytes(mutate(seed, ops))
        out = tmp_path / f"out{k}"
        out.mkdir()
        p = subprocess.run([sys.executable, "-m", "wsideid.cli", "deid", str(src), "-o", str(out), "--detect", "off"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode in (0, 2, 3), (ops, p.returncode, p.stderr)
        if p.returncode == 0:
            assert sorted(os.listdir(out)) == [f"m{k}.svs", f"m{k}.svs.audit.json"]
        else:
            assert p.stderr.startswith("wsideid: error:") and len(p.stderr.splitlines()) == 1, p.stderr
            assert os.listdir(out) == []


# --- DICOM (issue 17 item 8): the same oracle over tests/fuzz/dicom.py mutations ---

from fuzz import dicom as dfuzz  # noqa: E402

DICOM_EXAMPLES = int(os.environ.get("WSIDEID_DICOM_FUZZ_EXAMPLES", "60"))
dicom_ops_strategy = st.lists(st.tuples(st.integers(0, dfuzz.N_DICOM_OPS - 1), st.integers(0, 2 ** 16),
                                        st.integers(0, 2 ** 16)), min_size=1, max_size=4)


@settings(max_examples=DICOM_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, 10 ** 6), ops=dicom_ops_strategy)
def test_dicom_mutants_fail_closed(which, ops, tmp_path_factory):
    """Every DICOM mutant publishes a verified output free of planted values and markers, or fails in one line."""
    seeds = dfuzz.all_dicom_seeds()
    if not seeds:
        pytest.skip("no DICOM seed available")
    seed = seeds[which % len(seeds)]
    work = tmp_path_factory.mktemp("dfuzz")
    try:
        run_case(dfuzz.mutate(seed, ops), work, "input" + seed.suffix, seed.planted, timeout=20,
                 check=dfuzz.check_published_dicom)
    except Violation as v:
        raise AssertionError(f"{describe(seed.name, ops)}: {v}") from None


# (seed, ops, bug it exposed); found by bench/fuzz_long.py --dicom.
DICOM_CRASHERS = [
    ("highdicom_sm_image_jpegls.dcm", [(6, 36149, 39898)],
     "an extra text fragment among the JPEG-LS frames was copied as pixels: the planted marker was published"),
    # a sequence retagged as PixelData (VR SQ) was copied as "pixels": a removed UID inside it was published
    ("wsi2dcm_jpeg.dcm", [(8, 945, 62657), (3, 44838, 6576)],
     "retagged element + transfer syntax rewrite: a removed UID published"),
    ("highdicom_sm_image.dcm", [(9, 43502, 36426), (7, 47045, 20990), (8, 57346, 60710)],
     "private element + duplicated + retagged element: a removed UID published"),
]


@pytest.mark.parametrize("seed_name,ops,bug", DICOM_CRASHERS, ids=[c[0] + ":" + c[2][:30] for c in DICOM_CRASHERS])
def test_dicom_crashers_stay_fixed(seed_name, ops, bug, tmp_path):
    seeds = {s.name: s for s in dfuzz.all_dicom_seeds()}
    if seed_name not in seeds:
        pytest.skip(f"{seed_name} not available")
    seed = seeds[seed_name]
    outcome = run_case(dfuzz.mutate(seed, ops), tmp_path, "input" + seed.suffix, seed.planted,
                       check=dfuzz.check_published_dicom)
    assert outcome.kind in ("published", "flagged", "error")


def test_dicom_mutations_hit_every_kind_of_structure():
    """Each op changes a real seed, and the walker found headers, the transfer syntax and pixel items."""
    seeds = [s for s in dfuzz.all_dicom_seeds() if any(e.in_pixels for e in s.elems)]
    if not seeds:
        pytest.skip("no encapsulated DICOM seed available")
    seed = seeds[0]
    assert seed.ts_elem is not None and len(seed.elems) > 20
    for op in range(dfuzz.N_DICOM_OPS):
        changed = sum(dfuzz.mutate(seed, [(op, a, b)]) != seed.data for a in (1, 77, 301) for b in (3, 4, 9))
        assert changed >= 5, op


def test_dicom_walker_matches_pydicom():
    """The walker's element list agrees with pydicom on the top-level tags it reads (so ops land on headers)."""
    import pydicom
    seeds = dfuzz.real_dicom_seeds()
    if not seeds:
        pytest.skip("no real DICOM seed")
    for seed in seeds:
        path = dfuzz.TESTDATA / next(r for r in dfuzz.REAL_DICOM_SEEDS if r.endswith(seed.name))
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        walked = {e.tag for e in seed.elems}
        top = {int(el.tag) for el in ds}
        assert top <= walked, (seed.name, sorted(top - walked)[:5])
