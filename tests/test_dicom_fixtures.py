"""Shared helpers for the DICOM tests (imported by the other test_dicom_* files).

Test data lives outside the repository (../shared/testdata); tests that need
it skip cleanly when it is absent. Synthetic slides are built in memory from
those files with planted PHI, written to tmp_path, never into the repo.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from wsideid.dates import DatePolicy
from wsideid.dicom.plan import DicomOptions
from wsideid.keys import Secret
from wsideid.pipeline import DeidOptions, deidentify

# $WSIDEID_TESTDATA points elsewhere (e.g. from a git worktree, where ../shared is absent).
TESTDATA = Path(os.environ.get("WSIDEID_TESTDATA") or Path(__file__).resolve().parents[2] / "shared" / "testdata")
DICOM_DIR = TESTDATA / "dicom"
SECRET = Secret(b"wsideid-test-secret-0123456789ab", "test")
OTHER_SECRET = Secret(b"another-test-secret-0123456789ab", "test")


def dicom_file(name: str) -> Path:
    p = DICOM_DIR / f"{name}.dcm"
    if not p.is_file():
        pytest.skip(f"test data {p.name} not available")
    return p


def options(secret: Secret = SECRET, new_id: str | None = "RID-0001", dicom_opts: tuple[str, ...] = (),
            label: str = "remove", dates: DatePolicy | None = None, **kw) -> DeidOptions:
    return DeidOptions(dates=dates or DatePolicy(), new_id=new_id,
                       dicom=DicomOptions(options=dicom_opts, label=label, secret=secret), **kw)


def run(src: Path, outdir: Path, **kw):
    outdir.mkdir(parents=True, exist_ok=True)
    return deidentify(src, outdir, options(**kw))


def copy_into(folder: Path, *names: str) -> Path:
    """The named test files in ``folder``. A LABEL or OVERVIEW from another study joins the one
    VOLUME series copied with it (its Study, Series and Frame of Reference UIDs are set to that
    series'): the folder is one slide, as wsideid.dicom.slides groups instances by content."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        dst = folder / f"{n}.dcm"
        shutil.copyfile(dicom_file(n), dst)
        os.chmod(dst, 0o644)
    heads = {f: pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.glob("*.dcm"))}
    volumes = {str(d.SeriesInstanceUID): d for d in heads.values() if list(d.get("ImageType", []))[2:3] == ["VOLUME"]}
    if len(volumes) == 1:
        vol = next(iter(volumes.values()))
        for f, d in heads.items():
            foreign = d.SeriesInstanceUID != vol.SeriesInstanceUID
            if foreign and list(d.get("ImageType", []))[2:3] in (["LABEL"], ["OVERVIEW"]):
                ds = pydicom.dcmread(f)
                for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
                    setattr(ds, kw, vol.get(kw))
                ds.save_as(f)
    return folder


def synthetic_series(tmp_path: Path) -> Path:
    """A folder wsidicomizer makes of the synthetic SVS (three levels); skips without it."""
    from wsideid.synth import make_dicom
    src = tmp_path / "series"
    src.mkdir()
    try:
        make_dicom(str(src))
    except ImportError:
        pytest.skip("wsidicomizer (the convert extra) is not installed")
    return src


def output_files(result) -> list[Path]:
    out = Path(result.output)
    return sorted(out.glob("*.dcm")) if out.is_dir() else [out]


def read(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def all_uids(ds: Dataset) -> set[str]:
    keep = {"SOPClassUID", "ReferencedSOPClassUID", "CodingSchemeUID", "TransferSyntaxUID", "MediaStorageSOPClassUID"}
    found = set()
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.keyword not in keep and elem.value:
            vals = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
            found.update(str(v) for v in vals)
    return found


def test_fixture_paths_are_outside_the_repo():
    repo = Path(__file__).resolve().parents[1]
    assert repo not in TESTDATA.parents
