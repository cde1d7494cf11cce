"""Issue 11, roles: an image is a pyramid level only when size, aspect, vendor
markers and OpenSlide agree; anything else is an unknown image, removed with
its reason (or the slide refused with --strict), scanned and shown.

Each layout (tests/role_layouts.py) is one an audit published with its label
or macro as a "level". The outcome asserted is either a published slide
holding only the tissue pyramid, or a refusal with a clear message and
nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import openslide
import pytest

import role_layouts as L
from wsideid.errors import ProfileError, StrictRefusal, VerificationFailed
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth import ACCESSION, make_ndpi
from wsideid.tiff.container import read_tiff

TISSUE = {(L.W >> k, L.H >> k) for k in range(4)}


def _sizes(path) -> list[tuple[int, int]]:
    return [(int(f.value(256)), int(f.value(257))) for f in read_tiff(path).image_ifds()]


def _build(tmp_path, builder, name="slide.tif"):
    src = tmp_path / name
    builder(str(src))
    out = tmp_path / "out"
    out.mkdir()
    return src, out


@pytest.mark.parametrize("builder,unknown", [
    (L.bfconvert_like, {3, 4}),            # label and macro series, tiled, NewSubfileType 0
    (L.raw2ometiff_like, {1, 2, 5, 6, 7, 8}),  # their IFDs and SubIFD pyramids
    (L.bif_like, {1}),                     # "Label_Image", NewSubfileType 0, between levels
])
def test_tiled_label_and_macro_are_unknown_and_removed(builder, unknown, tmp_path):
    src, out = _build(tmp_path, builder)
    plan = inspect(src)
    got = {d.image.index for d in plan.images if d.image.role == "unknown"}
    assert got == unknown
    for d in plan.images:
        if d.image.index in unknown:
            assert d.action == "remove" and d.rule.startswith("unknown image: ") and len(d.rule) > 20
    res = deidentify(src, out, DeidOptions(detect="off"))
    assert res.status == "published"
    assert set(_sizes(res.output)) <= TISSUE  # no label (480x360) or macro (1200x400) image is left
    slide = openslide.OpenSlide(res.output)
    assert set(slide.level_dimensions) <= TISSUE and not slide.associated_images
    audit = json.loads(open(res.audit_path).read())
    rules = {im["index"]: im["rule"] for im in audit["images"]}
    assert all(rules[i].startswith("unknown image: ") for i in unknown)


@pytest.mark.parametrize("builder,why", [
    (L.leica_like, "cannot read it"),  # OpenSlide claims it, cannot read it: roles untrusted
    (L.label_first, "levels"),          # OpenSlide's level 0 is the label: views disagree
])
def test_layouts_openslide_disagrees_with_are_refused(builder, why, tmp_path):
    src, out = _build(tmp_path, builder)
    plan = inspect(src)
    # our roles never take the macro/label for tissue, whatever OpenSlide does
    kept = {(d.image.width, d.image.height) for d in plan.images if d.action != "remove"}
    assert kept <= TISSUE
    with pytest.raises(VerificationFailed, match=why) as err:
        deidentify(src, out, DeidOptions(detect="off"))
    assert "\n" not in str(err.value) and err.value.checks == ("reader",)
    assert os.listdir(out) == []


def test_svs_label_stored_as_tiles_is_removed(tmp_path):
    src, out = _build(tmp_path, L.svs_tiled_label, "slide.svs")
    assert openslide.OpenSlide(str(src)).level_dimensions[-1] == (480, 360)  # OpenSlide shows it as a level
    plan = inspect(src)
    roles = [(d.image.role, d.action) for d in plan.images]
    assert roles == [("level", "keep"), ("thumbnail", "keep"), ("level", "keep"), ("unknown", "remove")]
    assert "NewSubfileType 1" in plan.images[3].rule
    res = deidentify(src, out, DeidOptions(detect="off"))
    assert res.status == "published"
    b = openslide.OpenSlide(res.output)
    assert b.properties["openslide.vendor"] == "aperio"
    assert b.level_dimensions == ((1024, 768), (512, 384))
    assert (480, 360) not in _sizes(res.output)


def test_ndpi_macro_given_a_magnification_is_unknown_and_refused(tmp_path):
    base = tmp_path / "base.ndpi"
    make_ndpi(str(base))
    src = tmp_path / "slide.ndpi"
    L.ndpi_macro_as_level(str(base), str(src))
    plan = inspect(src)
    macro = plan.images[3]
    assert macro.image.role == "unknown" and macro.action == "remove"
    assert "magnification 0.5" in macro.rule
    out = tmp_path / "out"
    out.mkdir()
    # OpenSlide takes it for an NDPI and cannot read it: refused, not skipped
    with pytest.raises(VerificationFailed, match="hamamatsu but cannot read it") as err:
        deidentify(src, out, DeidOptions(detect="off"))
    assert err.value.checks == ("reader",)
    assert os.listdir(out) == []


def test_strict_refuses_an_unknown_image(tmp_path):
    src, out = _build(tmp_path, L.bif_like)
    with pytest.raises(StrictRefusal, match=r"image 1: NewSubfileType 0, not 1"):
        deidentify(src, out, DeidOptions(detect="off", strict=True))
    assert os.listdir(out) == []


def test_no_profile_keeps_an_unknown_image(tmp_path):
    src, out = _build(tmp_path, L.bif_like)
    keep_other = tmp_path / "p.toml"
    keep_other.write_text('[images]\nother = "keep"\nthumbnail = "keep"\n')
    plan = inspect(src, DeidOptions(profile=str(keep_other)))
    assert plan.images[1].image.role == "unknown" and plan.images[1].action == "remove"
    keep_unknown = tmp_path / "q.toml"
    keep_unknown.write_text('[images]\nunknown = "keep"\n')
    with pytest.raises(ProfileError, match="unknown role"):
        inspect(src, DeidOptions(profile=str(keep_unknown)))


def test_inspect_prints_the_reason(tmp_path):
    src, _ = _build(tmp_path, L.bif_like)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-m", "wsideid.cli", "inspect", str(src)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("[1]"))
    assert "unknown" in line and "NewSubfileType 0, not 1" in line


def test_every_small_level_is_scanned(tmp_path):
    """A label on level 1 (neither the full-resolution nor the smallest level) is found."""
    src, out = _build(tmp_path, L.labelled_level)
    res = deidentify(src, out, DeidOptions(identifiers=[ACCESSION]))
    scanned = sorted(s.index for s in res.scans if s.stage == "output")
    assert scanned == [1, 2, 3]  # every kept level but the full-resolution one
    assert res.status == "flagged"
    assert any(s.index == 1 and s.has_phi for s in res.scans)


def test_unknown_images_are_scanned_at_the_source(tmp_path):
    src, out = _build(tmp_path, L.bif_like)
    res = deidentify(src, out, DeidOptions(detect="all", identifiers=[ACCESSION]))
    src_scans = [s for s in res.scans if s.stage == "source"]
    assert [(s.role, s.index) for s in src_scans] == [("unknown", 1)]
    assert src_scans[0].has_phi
    assert res.status == "published"  # the label is gone from the output


def test_unknown_image_is_shown_on_the_qc_page(tmp_path):
    from test_batch_e2e import write_manifest
    from wsideid.batch.runner import BatchOptions, run_batch
    from wsideid.report.page import render
    (tmp_path / "slides").mkdir()
    L.bif_like(str(tmp_path / "slides" / "bif.tif"))
    m = write_manifest(tmp_path, [("slides/bif.tif", "R-9", "", ACCESSION, "")])
    res = run_batch(str(m), str(tmp_path / "out"), BatchOptions(detect="all", ocr=True, progress=False))
    assert res.counts == {"published": 1}
    review = tmp_path / "out-review"
    assert list((review / "images").glob("R-9.removed-unknown-*.jpg"))  # named with the image index
    page = render(str(review))
    assert 'alt="unknown"' in page and "unknown, removed from the slide" in page
    assert "unknown[1] remove (NewSubfileType 0, not 1 (reduced resolution))" in page


@pytest.mark.parametrize("mag,why", [(float("nan"), "no finite Magnification"), (float("inf"), "no finite"),
                                     (0.0, "Magnification 0 names no NDPI image kind"),
                                     (20.0, "magnification 20 gives 2048x1536")])
def test_ndpi_macro_with_other_magnifications_is_unknown(mag, why, tmp_path):
    base = tmp_path / "base.ndpi"
    make_ndpi(str(base))
    src = tmp_path / "slide.ndpi"
    L.ndpi_macro_as_level(str(base), str(src), mag)
    d = inspect(src).images[3]
    assert d.image.role == "unknown" and why in d.rule, d.rule
