"""Checks on a written MIRAX copy, before it is published, under the shared names (``wsideid.checks``).

- ``reparse``: our reader opens the copy (key file, index, every record in bounds);
- ``plan-held``: the copy's key file is exactly the one the plan renders, and
  re-planned nothing in it is removed or replaced again;
- ``no-unknown-fields`` / ``values-pass-policy``: re-planned, no key the
  profile does not know, no value failing its type or pattern;
- ``identifiers-replaced``: SLIDE_ID is the planned keyed pseudonym;
- ``roles``: the non-hierarchical records are exactly the kept ones (no label
  or macro unless kept), the levels keep their record counts;
- ``image-data``: kept records equal their source's decoding segments (all with
  ``--verify full``, else a sample and every non-hierarchical record);
- ``residual-needles``: no needle (removed values, their parts, user identifiers,
  dates) in any byte of the copy except JPEG entropy-coded data: key file,
  index, .mrxs file, data file headers, each record's segments;
- ``reader``: OpenSlide opens the copy as ``mirax`` with the same level
  sizes and MPP, identical pixels at the smallest level (its first 512 px square,
  bounded memory whatever the slide), and no associated
  image the plan removed;
- ``regions-blank``: every pixel of each blanked region reads flat through OpenSlide, on every level.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

from ..checks import Check, StopChecks, VerifyContext, VerifyReport, run_checks
from ..errors import WsideidError
from ..jpeg.structure import clean
from ..model import REMOVE, REPLACE, Plan
from ..needles import Scanner, needles_for_plan, report_residual
from ..streamheads import read_range
from ..profiles import make_plan
from ..valuepolicy import value_failed
from . import ini
from .slide import SLIDEDAT, MrxsSlide, inventory, open_mrxs
from .regions import record_boxes
from .write import Written, record_bytes

SAMPLE = 48
READER_WINDOW = 512  # the reader check compares at most this many pixels a side of the smallest level


def _replan(out: MrxsSlide, plan: Plan) -> Plan:
    """The copy's key file re-planned with the same profile (dates under "remove")."""
    from ..profiles import PlanOptions
    from ..dates import DatePolicy
    return make_plan(inventory(out), plan.profile, PlanOptions(DatePolicy("remove")))


_DATE_KEYS = ("SLIDE_CREATIONDATETIME", "SLIDE_UTC_CREATIONDATETIME")  # removed on re-plan under "remove"


def _segments(out: MrxsSlide, written: Written, mrxs: str) -> Iterator[tuple[int, bytes]]:
    """Every byte of the copy that is not JPEG entropy-coded data, as (pseudo-offset, bytes):
    every other file whole (read in bounded pieces; it used to stop at 64 MB per file)."""
    base = 0

    def add(data: bytes) -> tuple[int, bytes]:
        nonlocal base
        at, base = base, base + len(data) + 1
        return at, data

    for path in [mrxs] + [os.path.join(out.folder, n) for n in sorted(os.listdir(out.folder))]:
        if path in out.datafiles:
            continue
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            for off, piece in read_range(fh.fileno(), 0, size):  # back-to-back pieces: needles across them found
                yield base + off, piece
            base += size + 1
    for k, path in enumerate(out.datafiles):
        with open(path, "rb") as fh:
            first = min([r.offset for r in written.expected if r.fileno == k], default=os.path.getsize(path))
            yield add(fh.read(first))
    for rec in written.expected:
        data = out.read(rec)
        if rec.image >= 0 or any(r is rec for _, r in written.nonhier if _.role != "positions"):
            try:
                yield add(data[:clean(data).entropy_start])
            except WsideidError:
                yield add(data)
        else:
            yield add(data)


def _openslide(source: str, copy: str, plan: Plan, rep: VerifyReport) -> None:
    import numpy as np
    import openslide

    from ..openslide_guard import OpenSlideCrash, open_slide
    # OpenSlide's messages quote the offending Slidedat.ini line (a name typed there was
    # printed on the terminal and in the audit): only which file failed is said.
    try:
        a = open_slide(source)  # (in a child first: a crash fails the check, not the run)
    except (openslide.OpenSlideError, OpenSlideCrash):
        rep.record(Check.READER, False, "OpenSlide cannot open the source (its message may quote the file: not shown)")
        return
    try:
        b = open_slide(copy)
    except (openslide.OpenSlideError, OpenSlideCrash):
        a.close()
        rep.record(Check.READER, False, "OpenSlide cannot open the copy (its message may quote the file: not shown)")
        return
    with a, b:
        same = (b.properties.get("openslide.vendor") == "mirax" and a.level_dimensions == b.level_dimensions
                and a.properties.get("openslide.mpp-x") == b.properties.get("openslide.mpp-x"))
        kept_roles = {d.image.role for d in plan.images if d.action in ("keep", "replace")}
        extra = [n for n in b.associated_images if n not in kept_roles]
        low = a.level_count - 1
        w, h = a.level_dimensions[low]  # a slide's smallest level may be large: bounded memory
        size = (min(w, READER_WINDOW), min(h, READER_WINDOW))
        try:
            pa, pb = np.asarray(a.read_region((0, 0), low, size)), np.asarray(b.read_region((0, 0), low, size))
        except openslide.OpenSlideError:  # a failed reader check, not an internal error (exit 70)
            rep.record(Check.READER, False, "OpenSlide cannot read the smallest level (its message is not shown)")
            return
        keep = np.ones(pa.shape[:2], bool)
        ds = a.level_downsamples[low]
        for x, y, w, h in plan.regions:  # blanked regions, grown by an MCU on each level, may differ
            m = 16 * ds
            keep[max(0, int((y - m) / ds)):int((y + h + m) / ds) + 2, max(0, int((x - m) / ds)):int((x + w + m) / ds) + 2] = False
        pixels_equal = bool(np.array_equal(pa[keep], pb[keep]))
    rep.record(Check.READER, same and not extra and pixels_equal,
            f"vendor, levels, MPP and smallest-level pixels ({size[0]}x{size[1]} at the origin) as the source"
            + (f"; removed image still there: {extra}" if extra else "") + ("" if pixels_equal else "; pixels differ"))


NOT_APPLICABLE = {
    Check.COMPRESSED_STREAMS: "records are compared byte for byte with the stream rule's reduction of the "
                              "source (image-data)",
    Check.VALIDATOR: "no standard validator for MIRAX",
    Check.OUTPUT_HASH: "no output hash recorded (--hash none, or an existing output): a run hashes the "
                       "copy on disk and proves it unchanged since written",
}


@dataclass
class MiraxContext(VerifyContext):
    """The objects the MIRAX checks read: plan, what was written, the source slide, the copy."""

    plan: Plan
    written: Written
    source: MrxsSlide
    fill: str
    out: MrxsSlide | None = None

    @property
    def copy(self) -> MrxsSlide:
        assert self.out is not None, "reparse runs first"
        return self.out

    @functools.cached_property
    def replan(self) -> Plan:
        return _replan(self.copy, self.plan)


def new_report() -> VerifyReport:
    return VerifyReport(NOT_APPLICABLE)


def verify(plan: Plan, written: Written, source: MrxsSlide, full: bool, identifiers: Sequence[str],
           fill: str = "white") -> VerifyReport:
    """Every check of the vocabulary (``wsideid.checks``) over the written copy."""
    return run_checks(MiraxContext(new_report(), full, identifiers, plan, written, source, fill), STEPS)


def _reparse(ctx: MiraxContext) -> None:
    try:
        ctx.out = open_mrxs(ctx.written.mrxs)
    except WsideidError as exc:
        ctx.report.record(Check.REPARSE, False, str(exc))
        raise StopChecks from None
    ctx.report.record(Check.REPARSE, True, "our reader opens the copy")


def _plan_held(ctx: MiraxContext) -> None:
    """The key file is the one the plan renders; re-planned, nothing in it is removed or replaced
    again (value failures are values-pass-policy's, the slide ID identifiers-replaced's)."""
    with open(os.path.join(ctx.copy.folder, SLIDEDAT), "rb") as fh:
        same_ini = ini.parse(fh.read()).groups == ctx.written.ini.groups
    ctx.report.record(Check.PLAN_HELD, same_ini, "equals the one the plan renders" if same_ini else "key file differs from the plan's",
                      part="key file as planned")
    why = ""
    for d in ctx.replan.fields:
        if d.unknown or d.field.key == "general:SLIDE_ID" or value_failed(d):
            continue
        if d.action == REMOVE and d.field.key.partition(":")[2] not in _DATE_KEYS:
            why = f"{d.field.path} in the copy fails its profile entry"
            break
        if d.action == REPLACE:
            why = f"{d.field.path} in the copy would be replaced again"
            break
    ctx.report.record(Check.PLAN_HELD, not why, why or f"{len(ctx.replan.fields)} key(s) re-planned",
                      part="nothing removed")


def _files_as_written(ctx: MiraxContext) -> None:
    """Every byte of the copy is one the writer put there: the .mrxs file empty, the key file and
    the index byte for byte as rendered (a parsed comparison drops comments), and each data file
    its header followed by its records back to back, nothing between or after them. The needle
    scan knows only the source's removed values; a name anywhere else would pass it."""
    from .index import build_index
    from .write import data_header
    w, out = ctx.written, ctx.copy
    why = ""
    if os.path.getsize(w.mrxs):
        why = "the .mrxs file is not empty"
    with open(os.path.join(out.folder, SLIDEDAT), "rb") as fh:
        if not why and fh.read() != ini.render(w.ini):
            why = "the key file is not the one rendered"
    index = os.path.join(out.folder, out.ini.need("HIERARCHICAL", "INDEXFILE"))
    with open(index, "rb") as fh:
        if not why and fh.read() != build_index(w.slide_id, w.levels, [r for _, r in w.nonhier]):
            why = "the index file is not the one built"
    for k, path in enumerate(out.datafiles):
        if why:
            break
        head = data_header(w.slide_id, k)
        with open(path, "rb") as fh:
            if fh.read(len(head)) != head:
                why = f"data file {k}: its header is not the one written"
                break
        pos = len(head)
        for rec in sorted((r for r in w.expected if r.fileno == k), key=lambda r: r.offset):
            if rec.offset != pos:
                why = f"data file {k}: bytes between its records"
                break
            pos += rec.length
        if not why and os.path.getsize(path) != pos:
            why = f"data file {k}: bytes after its last record"
    ctx.report.record(Check.PLAN_HELD, not why, why or "every byte is the writer's", part="files as written")


def _no_unknown_fields(ctx: MiraxContext) -> None:
    unknown = [d.field.path for d in ctx.replan.fields if d.unknown]
    ctx.report.record(Check.NO_UNKNOWN_FIELDS, not unknown, f"unknown key {unknown[0]} in the copy" if unknown
                      else f"{len(ctx.replan.fields)} key(s), all known to the profile")


def _values_pass_policy(ctx: MiraxContext) -> None:
    failing = sorted({d.field.path for d in ctx.replan.fields
                      if value_failed(d) and d.field.key.partition(":")[2] not in _DATE_KEYS})
    ctx.report.record(Check.VALUES_PASS_POLICY, not failing,
                      f"{len(failing)} value(s) in the copy fail their type or pattern: {', '.join(failing[:5])}"
                      if failing else f"{len(ctx.replan.fields)} value(s) pass")


def _identifiers_replaced(ctx: MiraxContext) -> None:
    ids = [d.field.value for d in ctx.replan.fields if d.field.key == "general:SLIDE_ID"]
    ok = ids == [ctx.written.slide_id]
    ctx.report.record(Check.IDENTIFIERS_REPLACED, ok, "SLIDE_ID is the planned pseudonym" if ok else
                      "SLIDE_ID is not the planned pseudonym")


def _roles(ctx: MiraxContext) -> None:
    out, written, source = ctx.copy, ctx.written, ctx.source
    kept = [nh.role for nh, _ in written.nonhier]
    removed_still = [nh.role for nh in out.nonhier if nh.role in ("label", "macro") and nh.role not in kept]
    ctx.report.record(Check.ROLES, [nh.role for nh in out.nonhier] == kept and not removed_still
                      and [len(lv.records) for lv in out.levels] == [len(lv.records) for lv in source.levels],
                      "non-hierarchical records and level record counts as planned", part="records")
    # the folder holds the key file, the index and the data files the key file names, nothing else
    index = out.ini.need("HIERARCHICAL", "INDEXFILE")
    expected = {SLIDEDAT, index} | {os.path.basename(p) for p in out.datafiles}
    extra = sorted(set(os.listdir(out.folder)) - expected)
    ctx.report.record(Check.ROLES, not extra, f"{len(extra)} other file(s) in the copy's folder" if extra else
                      f"{len(expected)} file(s) in the copy's folder, all named by its key file", part="files")


def _image_data(ctx: MiraxContext) -> None:
    """Kept records equal their source's decoding segments (blanked as planned); a generated label its own."""
    out, written, source = ctx.copy, ctx.written, ctx.source
    records = list(written.expected)
    sample = records if ctx.full else random.Random(0).sample(records, min(SAMPLE, len(records)))
    sample += [r for _, r in written.nonhier if r not in sample]
    bad = 0
    positions = [r for nh, r in written.nonhier if nh.role == "positions"]
    where = {r: (li, k) for li, lv in enumerate(written.levels) for k, r in enumerate(lv)}
    boxes = record_boxes(source, ctx.plan.regions)
    for rec in sample:
        if rec in positions:
            continue
        if rec in written.generated:
            bad += out.read(rec) != written.generated[rec] or out.read(rec) == source.read(written.expected[rec])
            continue
        try:
            want, _ = record_bytes(source, written.expected[rec], boxes.get(where.get(rec, (-1, -1))), ctx.fill)
        except WsideidError:
            bad += 1
            continue
        bad += out.read(rec) != want
    ctx.report.record(Check.IMAGE_DATA, bad == 0, f"{len(sample)} records compared" + (f", {bad} differ" if bad else ""))


def _residual_needles(ctx: MiraxContext) -> None:
    needles = needles_for_plan(ctx.plan, ctx.identifiers)
    hits = Scanner(needles.searched).scan(_segments(ctx.copy, ctx.written, ctx.written.mrxs)) if len(needles) else []
    report_residual(ctx.report, needles, hits)


def _reader(ctx: MiraxContext) -> None:
    _openslide(ctx.source.path, ctx.written.mrxs, ctx.plan, ctx.report)


def _regions_blank(ctx: MiraxContext) -> None:
    if not ctx.plan.regions:
        ctx.report.not_applicable(Check.REGIONS_BLANK, "no region to blank")
    else:
        _regions_flat(ctx.written.mrxs, ctx.plan.regions, ctx.report)


STEPS = [(Check.REPARSE, _reparse), (Check.PLAN_HELD, _plan_held), (Check.PLAN_HELD, _files_as_written),
         (Check.NO_UNKNOWN_FIELDS, _no_unknown_fields),
         (Check.VALUES_PASS_POLICY, _values_pass_policy), (Check.IDENTIFIERS_REPLACED, _identifiers_replaced),
         (Check.ROLES, _roles), (Check.IMAGE_DATA, _image_data), (Check.RESIDUAL_NEEDLES, _residual_needles),
         (Check.READER, _reader), (Check.REGIONS_BLANK, _regions_blank)]


def _regions_flat(copy: str, regions, rep: VerifyReport) -> None:
    """Every pixel of each region reads flat in the copy, through OpenSlide, on every level
    (``regions-blank``, ``regions.flat_regions``; level 0 to its edge, the smaller levels less a
    2 px edge that chroma upsampling blends). It used to read level 0 only: a level left unblanked passed."""
    from ..openslide_guard import open_slide
    from ..regions import flat_regions, level_readers
    with open_slide(copy) as b:
        base = tuple(b.level_dimensions[0])
        targets = [(*t, base) for t in level_readers(b)]
        rows = flat_regions(list(regions), targets, lambda size: 0 if size == base else 2, 8)
    for part, ok, detail in rows:
        rep.record(Check.REGIONS_BLANK, ok, detail, part=part)
