"""Small valid slides of every format the project can make, as seeds for the hostile-file harness.

Each seed is made once per session by project code (wsideid.synth*, wsideid.mrxs.synth,
tests/role_layouts.py), at the smallest size that keeps its structure: a pyramid, its
associated images, its vendor XML. ``needles`` are the values planted in it (none may
reach a published output of a mutant).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FormatSeed:
    name: str  # short id used in case names
    path: Path  # the input given to the tool (a file; a .mrxs file; a DICOM folder)
    needles: tuple[str, ...]
    family: str  # "tiff" | "mrxs" | "dicom"

    @property
    def main_file(self) -> Path:
        """The file the structural mutations edit (a DICOM series: its smallest image instance)."""
        if self.family == "dicom":
            return sorted(self.path.iterdir(), key=lambda p: p.stat().st_size)[-2]
        return self.path


def _long(values) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if len(v) >= 6}))


def _bigtiff(path: str) -> None:
    """A generic tiled pyramid in BigTIFF (the generic driver's 64-bit container)."""
    import tifffile

    from wsideid.synth import MRN, _tiff_tags_with_phi, tissue
    base = tissue(512, 384, 2)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for k in range(3):
            tw.write(base[:: 2 ** k, :: 2 ** k], tile=(128, 128), photometric="rgb", compression="jpeg",
                     metadata=None, subfiletype=1 if k else 0,
                     description=f"Patient: Jane Doe; MRN {MRN}; scanned 2024-03-14" if k == 0 else None,
                     extratags=_tiff_tags_with_phi() if k == 0 else None)


def _dicom_series(folder: str) -> None:
    """In a child: importing wsidicomizer switches pydicom to future mode for the whole process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", f"from wsideid.synth import make_dicom; make_dicom({folder!r})"],
                   check=True, env=env, timeout=600, capture_output=True)


@functools.lru_cache(maxsize=None)
def seed_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="wsideid-hostile-seeds-"))


def _make(name: str) -> FormatSeed:
    import importlib.util

    if name in REAL:
        return _real(name)

    from wsideid.mrxs.synth import PLANTED_MRXS, make_mrxs
    from wsideid.synth import PLANTED, make_generic_tiff, make_ndpi, make_svs
    from wsideid.synth_ome import make_ome_tiff
    from wsideid.synth_philips import make_philips_tiff
    from wsideid.synth_qptiff import make_qptiff
    from wsideid.synth_vendors import BIF_PHI, SCN_PHI, make_bif, make_j2k_svs, make_scn

    d = seed_dir() / name
    d.mkdir(parents=True, exist_ok=True)
    planted = _long(PLANTED)
    if name == "svs":
        make_svs(str(d / "s.svs"), 512, 512)
        return FormatSeed(name, d / "s.svs", planted, "tiff")
    if name == "ndpi":
        make_ndpi(str(d / "s.ndpi"), 512, 384)
        return FormatSeed(name, d / "s.ndpi", planted, "tiff")
    if name == "tiff":
        make_generic_tiff(str(d / "s.tiff"), 512, 384)
        return FormatSeed(name, d / "s.tiff", planted, "tiff")
    if name == "bigtiff":
        _bigtiff(str(d / "s.tiff"))
        return FormatSeed(name, d / "s.tiff", planted, "tiff")
    if name == "subifd":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import role_layouts
        role_layouts.ome_subifds(str(d / "s.ome.tif"))
        return FormatSeed(name, d / "s.ome.tif", (), "tiff")
    if name == "ome":
        make_ome_tiff(str(d / "s.ome.tif"), 512, 384)
        return FormatSeed(name, d / "s.ome.tif", planted, "tiff")
    if name == "qptiff":
        make_qptiff(str(d / "s.qptiff"), fluorescence=False, width=512, height=384)
        return FormatSeed(name, d / "s.qptiff", planted, "tiff")
    if name == "philips":
        make_philips_tiff(str(d / "s.tiff"))  # 1536x1024: at 1024x768 the reader check fails (known, note3)
        return FormatSeed(name, d / "s.tiff", planted, "tiff")
    if name == "bif":
        make_bif(str(d / "s.bif"), 2, 2)
        return FormatSeed(name, d / "s.bif", _long(BIF_PHI.values()), "tiff")
    if name == "scn":
        make_scn(str(d / "s.scn"), 512, 512, levels=2)
        return FormatSeed(name, d / "s.scn", _long(SCN_PHI.values()), "tiff")
    if name == "j2k":
        make_j2k_svs(str(d / "s.svs"), 512, 512)
        return FormatSeed(name, d / "s.svs", (), "tiff")
    if name == "mrxs":
        make_mrxs(str(d / "s.mrxs"), 2, 2, levels=2)
        return FormatSeed(name, d / "s.mrxs", _long(PLANTED_MRXS), "mrxs")
    if name == "dicom":
        if importlib.util.find_spec("wsidicomizer") is None:
            raise LookupError("wsidicomizer is not installed")
        _dicom_series(str(d / "series"))
        return FormatSeed(name, d / "series", planted, "dicom")
    raise KeyError(name)


def planted(name: str) -> tuple[str, ...]:
    """The values planted in a format's seed, without making it."""
    from wsideid.synth import PLANTED
    return _long(PLANTED) if name in ("svs", "ndpi", "tiff", "bigtiff", "ome", "qptiff", "philips", "dicom") else ()


# Real slides from ../shared/testdata (the soak's --formats real-*; absent data is skipped): they
# hold what the synthetic seeds do not, such as JPEGTables and a vendor's own quirks.
REAL = {"real-svs": "svs/CMU-1-Small-Region.svs", "real-j2k": "svs/tcga-cr-7395-01a-01-ts1.svs",
        "real-ndpi": "ndpi/test3-TRITC-2-560.ndpi", "real-subifd": "tiff/libvips_subifd_pyramid_cmu1_small.tif",
        "real-ome": "ome-tiff/qupath_cells.ome.tif"}


def _real(name: str) -> FormatSeed:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from realdata import TESTDATA

    from wsideid.pipeline import inspect
    p = TESTDATA / REAL[name]
    if not p.exists():
        raise LookupError(f"{REAL[name]} not available")
    removed = inspect(p).removed_values()
    return FormatSeed(name, p, _long(v for v in removed if not (v.startswith("<") and v.endswith(">"))
                                     and not v.replace(".", "").isdigit()), "tiff")


FORMATS = ("svs", "ndpi", "tiff", "bigtiff", "subifd", "ome", "qptiff", "philips", "bif", "scn", "j2k", "mrxs",
           "dicom")


@functools.lru_cache(maxsize=None)
def seed(name: str) -> FormatSeed:
    return _make(name)


def copy_input(s: FormatSeed, dest_dir: Path, stem: str = "in") -> Path:
    """A private copy of the seed's input in ``dest_dir`` (a MIRAX slide with its folder)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if s.family == "mrxs":
        dst = dest_dir / f"{stem}.mrxs"
        shutil.copyfile(s.path, dst)
        shutil.copytree(s.path.with_suffix(""), dest_dir / stem)
        return dst
    if s.family == "dicom":
        dst = dest_dir / stem
        shutil.copytree(s.path, dst)
        return dst
    dst = dest_dir / (stem + "".join(s.path.suffixes))
    shutil.copyfile(s.path, dst)
    return dst


def cleanup() -> None:
    """Remove the seeds made so far (the next ``seed`` call makes them again)."""
    shutil.rmtree(seed_dir(), ignore_errors=True)
    seed.cache_clear()
    seed_dir.cache_clear()
