"""The registry is the one list of formats: every driver has its profile, its test module,
its extensions; detection refuses what no driver claims, by name when it can."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsideid.errors import UnsupportedFormat
from wsideid.profiles import load_profile
from wsideid.registry import DRIVERS, TIFF_DRIVERS, by_name, open_input, possible_outputs
from wsideid.refused import NOT_SLIDES, REFUSED

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda d: d.name)
def test_every_driver_has_a_profile_and_a_test_module(driver):
    assert load_profile(driver.name).format == driver.name
    assert (HERE.parent.parent / "formats" / driver.profile).is_file()
    assert (HERE / f"test_{driver.name.replace('-', '_')}.py").is_file(), "add tests/drivers/test_<format>.py"
    assert driver.extensions and all(e.startswith(".") for e in driver.extensions)
    assert by_name(driver.name) is driver


def test_names_are_unique():
    names = [d.name for d in DRIVERS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("entry", NOT_SLIDES, ids=lambda m: m.name)
def test_refused_by_name(entry, tmp_path):
    p = tmp_path / "slide.svs"
    head = bytearray(b"\0" * 256)
    m = entry.matches
    head[m.offset:m.offset + len(m.magic)] = m.magic
    p.write_bytes(bytes(head))
    with pytest.raises(UnsupportedFormat) as exc:
        open_input(p)
    assert str(exc.value) == entry.message() == f"not a supported slide: the file is {entry.name}"


def test_one_refused_table():
    """Slide formats (with a route) and non-slides (without) are entries of one table."""
    assert {r.is_slide for r in REFUSED} == {True, False}
    assert all(r.route for r in REFUSED if r.is_slide)


def test_unrecognised_content(tmp_path):
    p = tmp_path / "slide.svs"
    p.write_bytes(b"\x01\x02\x03\x04 not a slide")
    with pytest.raises(UnsupportedFormat, match="unrecognised content"):
        open_input(p)


def test_possible_outputs_cover_every_tiff_extension():
    names = possible_outputs("/data/x.tif", "R-1")
    for d in TIFF_DRIVERS:
        assert f"r-1{d.extensions[0]}" in names
    assert "r-1.tif" in names and "r-1.tif.audit.json" in names
