"""The registry is the one list of formats: every driver has its profile, its test module,
its extensions; detection refuses what no driver claims, by name when it can."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsideid.errors import UnsupportedFormat
from wsideid.profiles import load_profile
from wsideid.registry import DRIVERS, TIFF_DRIVERS, by_name, open_input, possible_outputs
from wsideid.sniff import REFUSED

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


@pytest.mark.parametrize("magic", REFUSED, ids=lambda m: m.what)
def test_refused_by_name(magic, tmp_path):
    p = tmp_path / "slide.svs"
    head = bytearray(b"\0" * 256)
    head[magic.offset:magic.offset + len(magic.magic)] = magic.magic
    p.write_bytes(bytes(head))
    with pytest.raises(UnsupportedFormat, match=magic.what):
        open_input(p)


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
