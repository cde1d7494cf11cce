"""Checks on a written MIRAX copy, before it is published; same check names as the other drivers.

- ``reparse``: our reader opens the copy (key file, index, every record in bounds);
- ``plan-held``: the copy's key file is exactly the one the plan renders, and
  re-planned it has nothing unknown and nothing the profile removes;
- ``roles``: the non-hierarchical records are exactly the kept ones (no label
  or macro unless kept), the levels keep their record counts;
- ``tiles``: kept records equal their source's decoding segments (all with
  ``--verify full``, else a sample and every non-hierarchical record);
- ``residual``: no needle (removed values, their parts, user identifiers,
  dates) in any byte of the copy except JPEG entropy-coded data: key file,
  index, .mrxs file, data file headers, each record's segments;
- ``openslide``: OpenSlide opens the copy as ``mirax`` with the same level
  sizes and MPP, identical pixels at the smallest level, and no associated
  image the plan removed.
"""

from __future__ import annotations

import os
import random
from typing import Sequence

from ..errors import WsideidError
from ..jpeg.structure import clean
from ..model import REMOVE, REPLACE, Plan, VerifyReport
from ..needles import Scanner, needles_for_plan, report_residual
from ..profiles import make_plan
from . import ini
from .slide import SLIDEDAT, MrxsSlide, inventory, open_mrxs
from .regions import record_boxes
from .write import Written, record_bytes

SAMPLE = 48


def _replan_ok(out: MrxsSlide, plan: Plan, written: Written) -> str:
    from ..profiles import PlanOptions
    from ..dates import DatePolicy
    again = make_plan(inventory(out), plan.profile, PlanOptions(DatePolicy("remove")))
    for d in again.fields:
        if d.unknown:
            return f"unknown key {d.field.path} in the copy"
        if d.field.key == "general:SLIDE_ID":
            if d.field.value != written.slide_id:
                return "SLIDE_ID is not the planned pseudonym"
            continue
        if d.action == REMOVE and d.field.key.partition(":")[2] not in _DATE_KEYS:
            return f"{d.field.path} in the copy fails its profile entry"
        if d.action == REPLACE:
            return f"{d.field.path} in the copy would be replaced again"
    return ""


_DATE_KEYS = ("SLIDE_CREATIONDATETIME", "SLIDE_UTC_CREATIONDATETIME")  # removed on re-plan under "remove"


def _segments(out: MrxsSlide, written: Written, mrxs: str) -> list[tuple[int, bytes]]:
    """Every byte of the copy that is not JPEG entropy-coded data, as (pseudo-offset, bytes)."""
    segs: list[tuple[int, bytes]] = []
    base = 0

    def add(data: bytes) -> None:
        nonlocal base
        segs.append((base, data))
        base += len(data) + 1

    for path in [mrxs] + [os.path.join(out.folder, n) for n in sorted(os.listdir(out.folder))]:
        if path in out.datafiles:
            continue
        with open(path, "rb") as fh:
            add(fh.read(ini.MAX_SIZE * 64))
    for k, path in enumerate(out.datafiles):
        with open(path, "rb") as fh:
            first = min([r.offset for r in written.expected if r.fileno == k], default=os.path.getsize(path))
            add(fh.read(first))
    for rec in written.expected:
        data = out.read(rec)
        if rec.image >= 0 or any(r is rec for _, r in written.nonhier if _.role != "positions"):
            try:
                add(data[:clean(data).entropy_start])
            except WsideidError:
                add(data)
        else:
            add(data)
    return segs


def _openslide(source: str, copy: str, plan: Plan, rep: VerifyReport) -> None:
    import numpy as np
    import openslide
    try:
        a, b = openslide.OpenSlide(source), openslide.OpenSlide(copy)
    except openslide.OpenSlideError as exc:
        rep.add("openslide", False, f"OpenSlide cannot open the copy ({exc})")
        return
    with a, b:
        same = (b.properties.get("openslide.vendor") == "mirax" and a.level_dimensions == b.level_dimensions
                and a.properties.get("openslide.mpp-x") == b.properties.get("openslide.mpp-x"))
        kept_roles = {d.image.role for d in plan.images if d.action in ("keep", "replace")}
        extra = [n for n in b.associated_images if n not in kept_roles]
        low = a.level_count - 1
        size = a.level_dimensions[low]
        pa, pb = np.asarray(a.read_region((0, 0), low, size)), np.asarray(b.read_region((0, 0), low, size))
        keep = np.ones(pa.shape[:2], bool)
        ds = a.level_downsamples[low]
        for x, y, w, h in plan.regions:  # blanked regions, grown by an MCU on each level, may differ
            m = 16 * ds
            keep[max(0, int((y - m) / ds)):int((y + h + m) / ds) + 2, max(0, int((x - m) / ds)):int((x + w + m) / ds) + 2] = False
        pixels_equal = bool(np.array_equal(pa[keep], pb[keep]))
    rep.add("openslide", same and not extra and pixels_equal,
            "vendor, levels, MPP and smallest-level pixels as the source"
            + (f"; removed image still there: {extra}" if extra else "") + ("" if pixels_equal else "; pixels differ"))


def verify(plan: Plan, written: Written, source: MrxsSlide, full: bool, identifiers: Sequence[str],
           fill: str = "white") -> VerifyReport:
    rep = VerifyReport()
    try:
        out = open_mrxs(written.mrxs)
    except WsideidError as exc:
        rep.add("reparse", False, str(exc))
        return rep
    rep.add("reparse", True, "our reader opens the copy")
    with open(os.path.join(out.folder, SLIDEDAT), "rb") as fh:
        same_ini = ini.parse(fh.read()).groups == written.ini.groups
    why = _replan_ok(out, plan, written)
    rep.add("plan-held", same_ini and not why, why or ("" if same_ini else "key file differs from the plan's"))
    kept = [nh.role for nh, _ in written.nonhier]
    removed_still = [nh.role for nh in out.nonhier if nh.role in ("label", "macro") and nh.role not in kept]
    rep.add("roles", [nh.role for nh in out.nonhier] == kept and not removed_still
            and [len(lv.records) for lv in out.levels] == [len(lv.records) for lv in source.levels],
            "non-hierarchical records and level record counts as planned")
    records = list(written.expected)
    sample = records if full else random.Random(0).sample(records, min(SAMPLE, len(records)))
    sample += [r for _, r in written.nonhier if r not in sample]
    bad = 0
    positions = [r for nh, r in written.nonhier if nh.role == "positions"]
    where = {r: (li, k) for li, lv in enumerate(written.levels) for k, r in enumerate(lv)}
    boxes = record_boxes(source, plan.regions)
    for rec in sample:
        if rec in positions:
            continue
        if rec in written.generated:
            bad += out.read(rec) != written.generated[rec] or out.read(rec) == source.read(written.expected[rec])
            continue
        try:
            want, _ = record_bytes(source, written.expected[rec], boxes.get(where.get(rec, (-1, -1))), fill)
        except WsideidError:
            bad += 1
            continue
        bad += out.read(rec) != want
    rep.add("tiles", bad == 0, f"{len(sample)} records compared" + (f", {bad} differ" if bad else ""))
    needles = needles_for_plan(plan, identifiers)
    hits = Scanner(list(needles.needles)).scan(_segments(out, written, written.mrxs)) if len(needles) else []
    report_residual(rep, needles, hits)
    _openslide(source.path, written.mrxs, plan, rep)
    if plan.regions:
        _regions_flat(written.mrxs, plan.regions, rep)
    return rep


def _regions_flat(copy: str, regions, rep: VerifyReport) -> None:
    """Every pixel of each region reads flat in the copy, through OpenSlide (``regions-flat``)."""
    import numpy as np
    import openslide
    worst = 0
    with openslide.OpenSlide(copy) as b:
        for x, y, w, h in regions:
            w, h = min(w, b.dimensions[0] - x), min(h, b.dimensions[1] - y)
            if w <= 0 or h <= 0:
                continue
            px = np.asarray(b.read_region((x, y), 0, (w, h)))[..., :3].astype(int)
            worst = max(worst, int(px.max() - px.min()))
    rep.add("regions-flat", worst <= 8, f"largest spread inside a blanked region: {worst} levels")
