"""End to end: real and synthetic slides through deid, checked independently.

Independent means: the output is opened with OpenSlide and tifffile (not our
reader), pixels are compared level by level, and the output bytes and the
audit are searched for every planted or removed value.
"""

from __future__ import annotations

import json
import os

import numpy as np
import openslide
import pytest
import tifffile

from wsideid.dates import make_policy
from wsideid.errors import StrictRefusal
from wsideid.keys import Secret
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth import PLANTED

from realdata import REAL_TIFF_SLIDES, real


def _same_slide(a_path, b_path, removed_roles=("label", "macro")):
    a, b = openslide.OpenSlide(str(a_path)), openslide.OpenSlide(str(b_path))
    assert b.properties["openslide.vendor"] == a.properties["openslide.vendor"]
    assert b.level_dimensions == a.level_dimensions
    for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
        assert b.properties.get(key) == a.properties.get(key)
    for lv, (w, h) in enumerate(a.level_dimensions):
        size = (min(w, 4096), min(h, 4096))
        np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), lv, size)),
                                      np.asarray(b.read_region((0, 0), lv, size)))
    assert not set(b.associated_images) & set(removed_roles)
    with tifffile.TiffFile(b_path) as t:
        assert len(t.pages) >= 1
        t.pages[0].asarray()


@pytest.mark.parametrize("rel,fmt", sorted(REAL_TIFF_SLIDES.items()))
def test_real_slides(rel, fmt, tmp_path):
    src = real(rel)
    before = src.read_bytes()
    res = deidentify(src, tmp_path, DeidOptions(new_id="RID-7", verify="full"))
    assert res.status == "published" and res.format == fmt
    out = tmp_path / ("RID-7" + src.suffix)
    assert res.output == str(out) and out.exists()
    assert src.read_bytes() == before  # input untouched
    _same_slide(src, out)
    # kept layout: NDPI stays NDPI, SVS stays classic TIFF
    assert out.read_bytes()[:4] == before[:4]
    removed = [v for v in res.plan.removed_values() if len(v) >= 6]
    data = out.read_bytes().lower()
    for v in removed:
        assert v.lower().encode() not in data, v
    audit = json.loads((tmp_path / "RID-7{}.audit.json".format(src.suffix)).read_text())
    assert audit["hash_algorithm"] == "blake3" and audit["blake3"]["output"]
    assert audit["profile"]["sha256"] == res.plan.profile_sha256
    text = json.dumps(audit).lower()
    for v in removed:
        assert v.lower() not in text, v


def test_cmu1_specifics(tmp_path):
    src = real("svs/CMU-1-Small-Region.svs")
    res = deidentify(src, tmp_path, DeidOptions(new_id="RID-1"))
    props = openslide.OpenSlide(res.output).properties
    assert "aperio.Date" not in props and "aperio.ScanScope ID" not in props and "aperio.User" not in props
    assert props["aperio.Filename"] == "RID-1"
    assert props["aperio.MPP"] == "0.4990"
    assert b"b414003d-95c6-48b0-9369-8010ed517ba7" not in open(res.output, "rb").read()


@pytest.mark.parametrize("fmt", ["aperio", "hamamatsu", "generic-tiff"])
def test_synthetic_planted_phi_is_gone(fmt, synth_slides, tmp_path):
    src = synth_slides[fmt]
    res = deidentify(src, tmp_path, DeidOptions(new_id="R-9"))
    assert res.report.ok
    _same_slide(src, res.output)
    blob = open(res.output, "rb").read().lower()
    audit = open(res.audit_path).read().lower()
    for value in PLANTED + ["dr who", "jsmith"]:
        assert value.lower().encode() not in blob, (fmt, value)
        assert value.lower().encode("utf-16-le") not in blob, (fmt, value)
        assert value.lower() not in audit, (fmt, value)
    assert res.plan.unknowns(), "synthetic slides plant unknown keys/tags"


def test_ndpi_keeps_its_layout_and_tags(synth_slides, tmp_path):
    res = deidentify(synth_slides["hamamatsu"], tmp_path, DeidOptions(new_id="R-2"))
    with tifffile.TiffFile(res.output) as t:
        assert t.is_ndpi
        tags = t.pages[0].tags
        assert tags[65427].value == "R-2"  # SlideLabel replaced by the research ID
        for gone in (65442, 65468, 65477, 65480, 306):
            assert gone not in tags
        assert "Created" not in tags[65449].value and "roi.barcode.macro" in tags[65449].value


@pytest.mark.parametrize("mode", ["year", "shift"])
def test_date_policies_on_synthetic_svs(mode, synth_slides, tmp_path):
    secret = Secret(b"test-secret-0123456789", "file")
    pol = make_policy(mode, secret, "subject-1")
    res = deidentify(synth_slides["aperio"], tmp_path, DeidOptions(dates=pol, new_id="R-3"))
    props = openslide.OpenSlide(res.output).properties
    if mode == "year":
        assert props["aperio.Date"] == "01/01/24"
        assert "aperio.Time" not in props
    else:
        import datetime as dt
        expect = (dt.date(2024, 3, 14) - dt.timedelta(days=pol.offset_days)).strftime("%m/%d/%y")
        assert props["aperio.Date"] == expect
        assert props["aperio.Time"] == "10:22:33"
    audit = open(res.audit_path).read()
    assert str(pol.offset_days) not in json.loads(audit)["options"].values()


def test_keep_macro(synth_slides, tmp_path):
    res = deidentify(synth_slides["aperio"], tmp_path, DeidOptions(keep_macro=True))
    assert "macro" in openslide.OpenSlide(res.output).associated_images
    assert "label" not in openslide.OpenSlide(res.output).associated_images


def test_strict_refuses_and_writes_nothing(synth_slides, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(synth_slides["aperio"], tmp_path, DeidOptions(strict=True))
    assert list(tmp_path.iterdir()) == []


def test_inspect_lists_every_field_with_action(synth_slides):
    plan = inspect(synth_slides["aperio"])
    paths = {d.field.path: d.action for d in plan.fields}
    assert paths["ifd[0]/ImageDescription/Barcode"] == "remove"
    assert paths["ifd[0]/Artist"] == "remove"
    assert paths["ifd[0]/65000"] == "remove"
    assert {d.image.role for d in plan.images} == {"level", "thumbnail", "label", "macro"}


def test_existing_output_is_not_overwritten(synth_slides, tmp_path):
    """With one secret a slide's pseudonym is the same in every run, so a rerun meets its output."""
    key = Secret(b"a-secret-for-this-test-only", "file")
    deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(secret=key))
    with pytest.raises(Exception, match="already exists"):
        deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(secret=key))
    deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(overwrite=True, secret=key))
    assert len([n for n in os.listdir(tmp_path) if not n.endswith(".audit.json")]) == 1


def test_label_replaced_by_generated_one(synth_slides, tmp_path):
    import zxingcpp
    res = deidentify(synth_slides["aperio"], tmp_path, DeidOptions(new_id="RES-0042", label="replace", ocr=False))
    assert res.status == "published"
    label = openslide.OpenSlide(res.output).associated_images["label"]
    assert [b.text for b in zxingcpp.read_barcodes(label)] == ["RES-0042"]
    blob = open(res.output, "rb").read()
    assert b"S24-12345" not in blob


def test_label_replace_needs_new_id(synth_slides, tmp_path):
    with pytest.raises(Exception, match="needs --new-id"):
        deidentify(synth_slides["aperio"], tmp_path, DeidOptions(label="replace"))


def test_hidden_carriers_are_all_removed(synth_slides, tmp_path):
    """EXIF/GPS child IFDs, XP/IPTC/Photoshop tags and COM/APP1 inside tiles."""
    import tifffile
    from wsideid.tiff.container import read_tiff
    src = synth_slides["aperio"]
    tf = read_tiff(src)
    assert 34665 in tf.ifds[0].children and 34853 in tf.ifds[0].children  # the carriers are there
    res = deidentify(src, tmp_path, DeidOptions(detect="off"))
    out = read_tiff(res.output)
    assert not out.ifds[0].children
    for tag in (285, 700, 33723, 34377, 34665, 34853, 40093, 65000):
        assert tag not in out.ifds[0].entries
    with tifffile.TiffFile(res.output) as t:
        page = t.pages[0]
        fh = t.filehandle
        for off, n in list(zip(page.dataoffsets, page.databytecounts))[:3]:
            fh.seek(off)
            head = fh.read(64)
            assert b"\xff\xfe" not in head[:4] and b"\xff\xe1" not in head[:4]
    assert "Jane Doe".encode("utf-16-le") not in open(res.output, "rb").read()


def test_bytes_after_a_tiles_eoi_are_dropped(tmp_path):
    """Text appended inside a tile's byte range, after its JPEG end marker."""
    import numpy as np
    import tifffile
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff.writer import OutEntry, OutIfd, write_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, (np.arange(128 * 128 * 3) % 200).astype(np.uint8).reshape(128, 128, 3), tile=(64, 64),
                     compression="jpeg", photometric="rgb", metadata=None)
    tf = read_tiff(plain)
    ifd = tf.ifds[0]
    data = image_data(ifd, "<")
    raw = plain.read_bytes()
    o, c = int(data.src_offsets[0]), int(data.src_counts[0])
    data.replaced[0] = raw[o:o + c] + b"Patient Jane Doe MRN 88812345"
    src = tmp_path / "trailing.tif"
    write_tiff(str(plain), str(src), [OutIfd({t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()
                                              if t not in (324, 325)}, data)], "classic", "<")
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(detect="off"))
    assert b"Jane Doe" not in open(res.output, "rb").read()
    assert res.report.ok


@pytest.mark.parametrize("fmt", ["aperio", "hamamatsu"])
@pytest.mark.parametrize("algo", ["blake3", "sha256"])
def test_audit_hash_matches_the_files(fmt, algo, synth_slides, tmp_path):
    """The output hash is computed beside the copy, from the recipe: it must be the file's,
    under the algorithm the audit names (blake3 by default, sha256 when asked)."""
    import hashlib

    import blake3
    digest = {"blake3": lambda b: blake3.blake3(b).hexdigest(), "sha256": lambda b: hashlib.sha256(b).hexdigest()}[algo]
    opts = DeidOptions(detect="off", macro="blank-label", hash_input=True) if algo == "sha256" else \
        DeidOptions(detect="off", macro="blank-label")
    opts.hash = algo
    res = deidentify(synth_slides[fmt], tmp_path, opts)
    audit = json.loads(open(res.audit_path).read())
    assert audit[algo]["output"] == digest(open(res.output, "rb").read())
    assert not ({"sha256", "blake3"} - {algo}) & set(audit)  # one table, named by its algorithm
    # The input's hash would tie the shared file to its source: it is in the lab record only,
    # and only when asked for (--hash-input: it costs a second pass over the input).
    assert "input" not in audit[algo]
    lab = json.loads(open(f"{tmp_path}-review/records/{os.path.basename(res.output)}.lab.json").read())
    if opts.hash_input:
        assert lab[algo]["input"] == digest(open(synth_slides[fmt], "rb").read())
    else:
        assert "input" not in lab[algo]


def test_hash_none_writes_no_hash(synth_slides, tmp_path):
    res = deidentify(synth_slides["aperio"], tmp_path, DeidOptions(detect="off", hash="none"))
    assert res.sha256 == {} and res.report.ok


def test_research_id_name_takes_the_formats_extension(synth_slides, tmp_path):
    """The input's extension is part of its name and may be PHI: it is not reused."""
    import shutil
    src = tmp_path / "DOE.JANE"
    shutil.copy(synth_slides["hamamatsu"], src)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(new_id="R-1", detect="off"))
    assert os.path.basename(res.output) == "R-1.ndpi"
    assert not [n for n in os.listdir(out) if "jane" in n.lower()]
