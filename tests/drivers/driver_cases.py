"""What every driver's test module checks, on a sample the project makes (``wsideid.synth``).

One module per driver (``test_<format>.py``) calls these with its own sample,
like OpenSlide's per-format test cases: detection by content, a published
and re-verified output that holds none of the planted values, and corrupted
variants of the sample, each refused with a one-line error and nothing left
in the output folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from wsideid.errors import WsideidError
from wsideid.keys import Secret
from wsideid.options import DeidOptions
from wsideid.pipeline import deidentify, verify_output
from wsideid.registry import open_input


SECRET = Secret(b"driver-tests-fixed-secret-0123456789", "file")


def options(**kw) -> DeidOptions:
    """The same options (and secret) for a run and its re-verification."""
    return DeidOptions(**{"new_id": "R-1", "detect": "off", "secret": SECRET, **kw})


def check_detected(sample: Path, name: str) -> None:
    opened = open_input(sample)
    assert opened.driver.name == name
    assert opened.files and all(os.path.isfile(f) for f in opened.files)


def check_round_trip(sample: Path, name: str, planted, tmp_path: Path) -> None:
    """Published, detected as the same format again, verified again, and no planted value in any byte."""
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(sample, out, options())
    assert res.status == "published" and res.format == name
    assert open_input(res.output).driver.name == name
    assert res.report is not None and res.report.ok
    again = verify_output(sample, res.output, options(verify="full"))
    assert again.ok, [c for c in again.failures()]
    paths = [res.output] if os.path.isfile(res.output) else [os.path.join(res.output, n) for n in os.listdir(res.output)]
    for p in paths:
        blob = Path(p).read_bytes().lower()
        leaked = [v for v in planted if v.lower().encode() in blob]
        assert not leaked, f"{p}: {leaked}"


DAMAGE = ("truncated-half", "truncated-header", "empty", "magic-lost")


def standard_cases(name: str, make: Callable[[str], object], filename: str, must_refuse: tuple[str, ...] = DAMAGE):
    """The module-scoped sample and the three cases every driver module runs on it (detection,
    round trip, corrupted variants), for modules that have nothing else to say: assign them to
    module names so pytest collects them there, one module per driver."""

    @pytest.fixture(scope="module")
    def sample(tmp_path_factory):
        return make(str(tmp_path_factory.mktemp(name) / filename))

    def test_detected_by_content(sample):
        check_detected(Path(sample.path), name)

    def test_round_trip(sample, tmp_path):
        check_round_trip(Path(sample.path), name, sample.planted, tmp_path)

    def test_corrupted_variants_are_refused_or_verified(sample, tmp_path):
        check_corrupted(Path(sample.path), tmp_path, must_refuse)

    return sample, test_detected_by_content, test_round_trip, test_corrupted_variants_are_refused_or_verified


def _dicom_sample(folder: Path) -> Path:
    """Made in a child process: importing wsidicomizer switches pydicom to its future behaviour
    for the whole process (see test_dicom.py)."""
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("wsidicomizer") is None:
        pytest.skip("wsidicomizer is not installed")
    series = folder / "series"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", f"from wsideid.synth import make_dicom; make_dicom({str(series)!r})"],
                   check=True, env=env, timeout=600)
    return series


def _made(make, name: str, **kw):
    def run(folder: Path) -> Path:
        make(str(folder / name), **kw)
        return folder / name
    return run


def sample_makers() -> dict[str, Callable[[Path], Path]]:
    """driver name -> a function making that driver's sample in a folder (the per-driver modules'
    samples), for tests parametrised over every driver in the registry."""
    from wsideid.mrxs.synth import make_mrxs
    from wsideid.synth import make_generic_tiff, make_ndpi, make_svs
    from wsideid.synth_ome import make_ome_tiff
    from wsideid.synth_philips import make_philips_tiff
    from wsideid.synth_qptiff import make_qptiff
    from wsideid.synth_vendors import make_bif, make_scn
    return {"hamamatsu": _made(make_ndpi, "s.ndpi"), "aperio": _made(make_svs, "s.svs"),
            "philips": _made(make_philips_tiff, "s.tiff"), "qptiff": _made(make_qptiff, "s.qptiff", fluorescence=False),
            "ventana": _made(make_bif, "s.bif"), "leica": _made(make_scn, "s.scn"),
            "ome-tiff": _made(make_ome_tiff, "s.ome.tif"), "generic-tiff": _made(make_generic_tiff, "s.tiff"),
            "dicom": _dicom_sample, "mirax": _made(make_mrxs, "s.mrxs")}


def corrupted_variants(sample: Path, tmp_path: Path) -> dict[str, Path]:
    """The sample's main file damaged in the ways real files are: cut short, emptied, its magic
    lost, a run of bytes zeroed near the start (where the structure is) and a run of garbage."""
    main = Path(open_input(sample).files[0])
    data = main.read_bytes()
    variants = {
        "truncated-half": data[: len(data) // 2],
        "truncated-header": data[:200],
        "empty": b"",
        "magic-lost": b"\0" * 4 + data[4:],
        "structure-zeroed": data[:8] + b"\0" * 4096 + data[8 + 4096:],
        "garbage-tail": data[: len(data) // 3] + os.urandom(4096),
    }
    out = {}
    for what, blob in variants.items():
        if sample.is_dir():
            dest = tmp_path / f"{what}-series"
            shutil.copytree(sample, dest)
            (dest / main.name).write_bytes(blob)
        else:
            dest = tmp_path / f"{what}{sample.suffix}"
            dest.write_bytes(blob)
        out[what] = dest
    return out


def check_corrupted(sample: Path, tmp_path: Path, must_refuse: tuple[str, ...]) -> None:
    """Every variant gives a published output that verified, or a one-line WsideidError and an
    empty output folder; those in ``must_refuse`` are refused."""
    for what, path in corrupted_variants(sample, tmp_path).items():
        out = tmp_path / f"out-{what}"
        out.mkdir()
        try:
            res = deidentify(path, out, options())
        except WsideidError as exc:
            assert "\n" not in str(exc) and str(exc), what
            assert [n for n in os.listdir(out)] == [], f"{what}: left {os.listdir(out)}"
            continue
        assert what not in must_refuse, f"{what}: was published"
        assert res.report.ok, what


def check_refused(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out-refused"
    out.mkdir()
    with pytest.raises(WsideidError) as err:
        deidentify(path, out, options())
    assert str(err.value) and "\n" not in str(err.value)
    assert os.listdir(out) == []


def refused_by_name(tmp_path: Path) -> None:
    """Not a slide: refused with what the bytes look like."""
    p = tmp_path / "photo.svs"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with pytest.raises(WsideidError, match="PNG"):
        open_input(p)
