"""Verification of a de-identified TIFF-family output before it is published.

The output is re-opened from disk, independently of what the writer
believes it wrote, and checked against the plan, under the shared check
names (``wsideid.checks``; the table per driver is in docs/architecture.md):

- ``reparse``: our reader parses it, as the same container kind (or BigTIFF),
  and the same vendor module claims it;
- ``roles``: the kept images have the same roles, sizes and tile counts;
- ``plan-held`` / ``no-unknown-fields`` / ``values-pass-policy``: every removed
  field is gone, and the output re-planned holds no unknown field and no value
  failing its type or pattern;
- ``image-data``: tile/strip bytes equal the source's (a sample per image, all
  with ``--verify full``); edited tiles equal their editor's bytes;
- ``residual-needles``: no needle (removed values, their parts, user
  identifiers and every spelling of a removed date; see needles.py) occurs, in
  any encoding or case, in any byte that is not pixel data, tile and strip
  headers included;
- ``compressed-streams``: every JPEG / JPEG 2000 tile re-parsed holds only its
  decoding segments up to its first end marker, JPEGTables only used tables,
  and streams the rule edited decode exactly as their source;
- ``reader``: OpenSlide, as an independent judge: when it claims the input's
  format but cannot read it, the slide is refused (its roles cannot be
  trusted); when it reads it, the vendor must be the driver's, and the output
  must open as the same vendor with the input's levels less the removed
  images, every kept level among them, and no label, macro or other
  associated image the plan removed;
- ``regions-blank``: every pixel of each blanked region (but a 2 px edge) reads flat, on
  every level and the thumbnail OpenSlide shows.
"""

from __future__ import annotations

import contextlib

import functools
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Iterator, Sequence

import numpy as np

from ..checks import Check, CheckStatus, StopChecks, VerifyContext, VerifyReport, run_checks
from ..errors import MalformedFile, WsideidError
from ..model import KEEP, REMOVE, Plan
from ..needles import Scanner, needles_for_plan, report_residual
from .. import openslide_guard
from ..openslide_guard import open_slide
from ..streamheads import HeaderMemo, distinct_headers, read_range
from ..tiff import jpegsegs, spans
from ..tiff.container import TiffFile, read_tiff
from ..tiff.edits import as_tile_edits
from ..tiff.writer import ImageData
from ..valuepolicy import value_failed
from .source_view import SourceView, expected_levels, read_region, region_size, source_view
from .vendors import tiff_base

SAMPLE_TILES = 8
NON_PIXEL_LIMIT = 256 << 20


def pixel_ranges(tf: TiffFile) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every strip/tile of the file, sorted by start. Filled into two arrays
    made once (a slide's tiles are what grows with it: lists of parts and their concatenation
    peaked at ~56 B a tile)."""
    datas = [d for d in (tiff_base.image_data(ifd, tf.byteorder) for ifd in tf.all_ifds()) if d is not None]
    n = sum(int(np.count_nonzero(d.src_counts > 0)) for d in datas)
    s, e = np.empty(n, np.int64), np.empty(n, np.int64)
    at = 0
    for d in datas:
        live = d.src_counts > 0
        m = int(np.count_nonzero(live))
        np.compress(live, d.src_offsets, out=s[at:at + m])
        np.compress(live, d.src_counts, out=e[at:at + m])
        e[at:at + m] += s[at:at + m]
        at += m
    datas = d = live = None  # the per-IFD arrays go before the sort
    if n and (s[1:] < s[:-1]).any():  # a writer's file is in order already
        order = np.argsort(s, kind="stable")
        s = s[order]
        e = e[order]
    return s, e


def structure_ranges(tf: TiffFile) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (sorted by start) of every byte the container's structure names: the
    header, each IFD's entry table (with its next pointer, and the NDPI high words after it),
    each value stored outside its entry, and the strips/tiles. Opaque entries (a type no reader
    knows) name nothing. Arrays: a tile is two integers, never a Python object (the run itself
    takes them in windows: ``unreferenced_nonzero``)."""
    ms, me = _metadata_sorted(tf)
    ps, pe = pixel_ranges(tf)
    # the few metadata ranges merged into the sorted pixel ranges, each before pixel ranges
    # that start where it does (what a stable sort of metadata then pixels gives)
    at = np.searchsorted(ps, ms, side="left")
    return np.insert(ps, at, ms), np.insert(pe, at, me)


def _metadata_sorted(tf: TiffFile) -> tuple[np.ndarray, np.ndarray]:
    """``structure_ranges`` without the strips and tiles: the header, IFD tables and values."""
    head = {"classic": 8, "bigtiff": 16, "ndpi": 12}[tf.kind]
    s, e = [0], [head]
    for ifd in tf.all_ifds():
        n = len(ifd.entries)
        table = {"classic": 2 + 12 * n + 4, "bigtiff": 8 + 20 * n + 8, "ndpi": 2 + 12 * n + 8 + 4 * n}[tf.kind]
        s.append(ifd.offset)
        e.append(ifd.offset + table)
        for entry in ifd.entries.values():
            if entry.value_offset is not None:
                s.append(entry.value_offset)
                e.append(entry.value_offset + len(entry.raw))
    ms, me = np.array(s, np.int64), np.array(e, np.int64)
    order = np.argsort(ms, kind="stable")
    return ms[order], me[order]


def _pixel_batches(tf: TiffFile) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The strips' and tiles' (start, end) sorted by start, in batches: a window of one image at a
    time when the file is well ordered (``tiff.spans``: as writers lay tiles out), else
    ``pixel_ranges`` in one batch."""
    found = tiff_base.data_spans(tf)
    if found is None:
        yield pixel_ranges(tf)
        return
    flat = list(tf.all_ifds())
    for span in found:
        windows = tiff_base.data_windows(flat[span.key], tf.byteorder)
        assert windows is not None  # it has a span
        yield from spans.live_ranges(windows())


def unreferenced_nonzero(path: str, tf: TiffFile) -> int:
    """Non-zero bytes that no part of the structure names (text after the last IFD, in a gap
    between tiles or values): a reader never shows them, so the writer never leaves them (it
    pads with zeros, and in-place mode wipes what it no longer uses)."""
    count = 0
    with open(path, "rb") as fh:
        for a, b in spans.uncovered(spans.merged(_pixel_batches(tf), _metadata_sorted(tf)), tf.size):
            for _, piece in read_range(fh.fileno(), a, b):
                count += len(piece) - piece.count(0)
    return count


def _gaps(tf: TiffFile) -> Iterator[tuple[int, int]]:
    """(from, to) of the bytes no strip or tile covers, found a batch of ranges at a time (a
    gap per tile at worst, never all of them gathered)."""
    return spans.uncovered(_pixel_batches(tf), tf.size)


def non_pixel_segments(path: str, tf: TiffFile, limit: int = NON_PIXEL_LIMIT) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of every byte of the output not covered by image data, then the
    header of every JPEG / JPEG 2000 tile and strip (everything before its entropy-coded data)."""
    memo = HeaderMemo()
    total = 0
    with open(path, "rb") as fh:
        for a, b in _gaps(tf):
            for off, piece in read_range(fh.fileno(), a, b):
                if len(piece) > 2 * _ZERO_EDGE and piece.count(0) == len(piece):
                    # zeros hold no text (in-place mode wipes the old versions of edited tiles):
                    # not counted, and only its edges scanned, where a needle's NUL bytes could lie
                    yield off, piece[:_ZERO_EDGE]
                    memo.prev_end = off + len(piece)
                    yield off + len(piece) - _ZERO_EDGE, piece[-_ZERO_EDGE:]
                    continue
                total += len(piece)
                if total > limit:
                    raise WsideidError("output has more non-pixel bytes than the residual scan allows")
                memo.prev_end = off + len(piece)
                yield off, piece
    ordered = tiff_base.data_spans(tf) is not None  # each image's tiles in file order: a window at a time
    for ifd in tf.all_ifds():
        windows = tiff_base.data_windows(ifd, tf.byteorder) if ordered else None
        if windows is None:
            data = tiff_base.image_data(ifd, tf.byteorder)
            if data is None:
                continue
            tables = iter([(data.src_offsets, data.src_counts)])
        else:
            tables = windows()
        for offsets, counts in tables:
            for off, head in distinct_headers(path, offsets, counts, memo):
                if total + memo.total > limit:
                    raise WsideidError("output has more non-pixel bytes than the residual scan allows")
                yield off, head
    if total + memo.total > limit:
        raise WsideidError("output has more non-pixel bytes than the residual scan allows")


_ZERO_EDGE = 1 << 16


def _sample(n: int, full: bool) -> list[int]:
    if full or n <= SAMPLE_TILES:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (SAMPLE_TILES - 1))) for i in range(SAMPLE_TILES)})


def _same_bytes(fa, oa: int, fb, ob: int, n: int) -> bool:
    step = 8 << 20
    done = 0
    while done < n:
        k = min(step, n - done)
        if os.pread(fa.fileno(), k, oa + done) != os.pread(fb.fileno(), k, ob + done):
            return False
        done += k
    return True


NOT_APPLICABLE = {
    Check.IDENTIFIERS_REPLACED: "TIFF-family formats hold no keyed UIDs: replaced IDs are fields (plan-held)",
    Check.VALIDATOR: "no standard validator for TIFF",
    Check.OUTPUT_HASH: "no output hash recorded (--hash none, --in-place, or an existing output): a run "
                       "hashes the file it writes from disk, and proves it unchanged until published",
}


@dataclass
class TiffContext(VerifyContext):
    """The objects the TIFF-family checks read: source, output, plan, vendor module and tile edits."""

    src: TiffFile
    out_path: str
    plan: Plan
    module: ModuleType  # the vendor module (claims, roles, inventory)
    edited: dict[int, dict[int, bytes]]
    out: TiffFile | None = None  # the output, once it parses
    # OpenSlide's reading of the input, taken before the output was written (in-place: before
    # the switch, when the input's path still holds the input); None: read at check time
    source_view: SourceView | None = None

    @property
    def output(self) -> TiffFile:
        assert self.out is not None, "reparse runs first"
        return self.out

    @property
    def kept_top(self) -> list[int]:
        """The kept IFD images (not those held inside a description), in output order."""
        return [d.image.index for d in self.plan.images if d.action != "remove" and not d.image.extra.get("embedded")]

    @functools.cached_property
    def out_inventory(self):
        return self.module.inventory(self.output)

    @functools.cached_property
    def replan(self) -> Plan:
        """The output re-planned with the same profile: what it holds, judged afresh."""
        from ..dates import DatePolicy
        from ..profiles import PlanOptions, make_plan
        return make_plan(self.out_inventory, self.plan.profile, PlanOptions(DatePolicy("shift", 0)))


def verify_tiff(src: TiffFile, out_path: str, plan: Plan, module, edited: dict[int, dict[int, bytes]],
                full: bool = False, identifiers: Sequence[str] = (), source: SourceView | None = None) -> VerifyReport:
    """Every check of the vocabulary over the written output (``wsideid.checks``); ``source``:
    OpenSlide's view of the input when it was taken before the output was written (in-place)."""
    ctx = TiffContext(VerifyReport(NOT_APPLICABLE), full, identifiers, src, out_path, plan, module, edited,
                      source_view=source)
    openslide_guard.start(out_path)  # OpenSlide's child opens the output beside the checks before ``reader``
    return run_checks(ctx, STEPS)


def _reparse(ctx: TiffContext) -> None:
    rep, src = ctx.report, ctx.src
    try:
        out = read_tiff(ctx.out_path)
    except WsideidError as exc:
        rep.record(Check.REPARSE, False, f"output does not parse: {exc}", part="parse")
        raise StopChecks from None
    ctx.out = out
    rep.record(Check.REPARSE, True, f"{out.kind}, {len(out.ifds)} IFDs", part="parse")
    rep.record(Check.REPARSE, out.kind == src.kind or (src.kind == "classic" and out.kind == "bigtiff"),
               f"{src.kind} -> {out.kind}", part="container")
    if not ctx.module.claims(out):
        rep.record(Check.REPARSE, False, f"output is no longer recognised as {ctx.module.NAME}", part="format")
        raise StopChecks
    rep.record(Check.REPARSE, True, ctx.module.NAME, part="format")


def _roles(ctx: TiffContext) -> None:
    rep, plan, out, module = ctx.report, ctx.plan, ctx.output, ctx.module
    # images held inside a description (Philips XML) are not IFDs: checked on their own
    kept = [d.image for d in plan.images if d.action != "remove" and not d.image.extra.get("embedded")]
    held = sorted((d.image.role, d.image.width, d.image.height) for d in plan.images
                  if d.action != "remove" and d.image.extra.get("embedded"))
    if held or any(d.image.extra.get("embedded") for d in plan.images):
        out_held = sorted((i.role, i.width, i.height) for i in ctx.out_inventory.images if i.extra.get("embedded"))
        rep.record(Check.ROLES, out_held == held,
                   f"{len(out_held)} image(s) held in the description (planned {len(held)})", part="embedded images")
    out_roles = [str(c) for c in module.roles(out)]
    out_images = out.image_ifds()
    ok = len(out_images) == len(kept)
    detail = f"{len(out_images)} images (expected {len(kept)})"
    if ok:
        for img, ifd, role in zip(kept, out_images, out_roles):
            w, h = int(ifd.value(256, 0)), int(ifd.value(257, 0))
            data = tiff_base.image_data(ifd, out.byteorder)
            n = len(data.src_offsets) if data is not None else 0
            replaced = any(d.image.index == img.index and d.action == "replace" for d in plan.images)
            if replaced:
                n = img.tile_count  # a generated label has its own strips
            if (role, w, h, n) != (img.role, img.width, img.height, img.tile_count):
                ok = False
                detail = f"image {img.index} changed: {role} {w}x{h} {n} tiles"
                break
    rep.record(Check.ROLES, ok, detail, part="images")
    if not ok:
        raise StopChecks


def _image_data(ctx: TiffContext) -> None:
    """Data ranges inside the file, and tile/strip bytes identical to the source's (or the edit's)."""
    rep, src, out, plan, full = ctx.report, ctx.src, ctx.output, ctx.plan, ctx.full
    flat_src = list(src.all_ifds())
    src_images, out_images = src.image_ifds(), out.image_ifds()
    tally = [0, 0, 0, 0]  # mismatch, checked, edited_bad, edited_checked
    with open(src.path, "rb") as fa, open(ctx.out_path, "rb") as fb:
        for oi, si in enumerate(ctx.kept_top):
            s_ifd, o_ifd = src_images[si], out_images[oi]
            sw, ow = tiff_base.data_windows(s_ifd, src.byteorder), tiff_base.data_windows(o_ifd, out.byteorder)
            windowed = sw is not None and ow is not None and _count(s_ifd) == _count(o_ifd)
            try:  # bounded one by one before they are added (an offset near 2**63 wraps in int64)
                if windowed:
                    for offs, cnts in ow():  # type: ignore[misc]
                        tiff_base.check_data_bounds(out, o_ifd, ImageData(0, 0, offs, cnts))
                else:
                    od = tiff_base.image_data(o_ifd, out.byteorder)
                    tiff_base.check_data_bounds(out, o_ifd, od)
            except MalformedFile:
                rep.record(Check.IMAGE_DATA, False, f"image {si}: data past the end of the output", part="data ranges")
                raise StopChecks from None
            k = flat_src.index(s_ifd)
            if any(d.image.index == si and d.action == "replace" for d in plan.images):
                continue  # generated label: nothing of the source to compare
            new_tiles = as_tile_edits(ctx.edited.get(k, {}), src.path)
            if windowed:
                pairs = ((sa, sb, oa, ob) for (sa, sb), (oa, ob) in zip(sw(), ow()))  # type: ignore[misc]
            else:
                sd, od = tiff_base.image_data(s_ifd, src.byteorder), tiff_base.image_data(o_ifd, out.byteorder)
                pairs = iter([(sd.src_offsets, sd.src_counts, od.src_offsets, od.src_counts)])
            _compare_image(pairs, _count(s_ifd) if windowed else len(sd.src_offsets), new_tiles, full, fa, fb, tally)
    mismatch, checked, edited_bad, edited_checked = tally
    rep.record(Check.IMAGE_DATA, True, "all ranges inside the file", part="data ranges")
    rep.record(Check.IMAGE_DATA, mismatch == 0 and edited_bad == 0,
               f"{checked} tiles/strips compared with the source{' (all)' if full else ' (sample)'}, {mismatch} differ; "
               f"{edited_checked} edited ones compared with their edit, {edited_bad} differ", part="pixels identical")


def _count(ifd) -> int:
    """Strips or tiles of an IFD, as its offsets table counts them."""
    e = ifd.entries.get(324, ifd.entries.get(273))
    return e.count if e is not None else 0


def _compare_image(pairs, n: int, new_tiles, full: bool, fa, fb, tally: list[int]) -> None:
    """One image's sampled tiles compared with the source's and its edited tiles with their
    edits, the tables given a window at a time (source offsets, counts, output's, in step)."""
    edited, lens = new_tiles.indices().tolist(), new_tiles.lengths().tolist()
    sample = _sample(n, full)
    ei = ti = at = 0
    for so, sc, oo, oc in pairs:
        end = at + len(so)
        while ei < len(edited) and edited[ei] < end:
            # an edited tile must hold exactly the editor's bytes (streamed from its pieces)
            t, j = edited[ei], edited[ei] - at
            tally[2] += int(oc[j]) != lens[ei] or not new_tiles.matches(t, fb.fileno(), int(oo[j]))
            tally[3] += 1
            ei += 1
        while ti < len(sample) and sample[ti] < end:
            t, j = sample[ti], sample[ti] - at
            ti += 1
            if t in new_tiles:
                continue
            if sc[j] != oc[j] or not _same_bytes(fa, int(so[j]), fb, int(oo[j]), int(sc[j])):
                tally[0] += 1
            tally[1] += 1
        at = end
    tally[2] += len(edited) - ei  # an edit the image has no tile for: fails closed
    tally[3] += len(edited) - ei


def _no_unknown_fields(ctx: TiffContext) -> None:
    """Re-plan the output with the same profile data; nothing unknown may remain."""
    unknown = [d.field.key for d in ctx.replan.fields if d.unknown]
    ctx.report.record(Check.NO_UNKNOWN_FIELDS, not unknown,
                      f"{len(unknown)} unknown field(s) in output" if unknown else
                      f"{len(ctx.replan.fields)} field(s), all known to the profile")


def _values_pass_policy(ctx: TiffContext) -> None:
    """Every value in the output passes the value policy as it stands: the writer wrote
    what the plan kept, and nothing kept holds free text."""
    failing = sorted({d.field.path for d in ctx.replan.fields if value_failed(d)})
    ctx.report.record(Check.VALUES_PASS_POLICY, not failing,
                      f"{len(failing)} output value(s) fail their type or pattern: {', '.join(failing[:5])}"
                      if failing else f"{len(ctx.replan.fields)} value(s) pass")


def _plan_held(ctx: TiffContext) -> None:
    """No removed field is in the output. A removed field is looked for in the IFD its own
    IFD became (the value policy may keep MPP in one IFD and remove a forged MPP in another)."""
    src, out, plan = ctx.src, ctx.output, ctx.plan
    flat_src, flat_out = list(src.all_ifds()), list(out.all_ifds())
    src_images, out_images = src.image_ifds(), out.image_ifds()
    out_index = {flat_src.index(src_images[si]): flat_out.index(out_images[oi]) for oi, si in enumerate(ctx.kept_top)}
    out_keys = {(f.key, f.path.split("/", 1)[-1]) for f in ctx.out_inventory.fields}
    out_keys_at = {(f.key, f.ifd) for f in ctx.out_inventory.fields}
    removed = [d for d in plan.fields if d.action == REMOVE]
    leftovers = [d.field.path for d in removed
                 if plan.inventory.images and _ifd_kept(plan, d.field.ifd, src.image_owners())
                 and ((d.field.key, out_index[d.field.ifd]) in out_keys_at if d.field.ifd in out_index
                      else (d.field.key, d.field.path.split("/", 1)[-1]) in out_keys)]
    ctx.report.record(Check.PLAN_HELD, not leftovers, f"still in the output: {', '.join(leftovers[:5])}" if leftovers
                      else f"{len(removed)} removed field(s) absent")
    # What the source's plan cannot see: a field the source did not have (an ImageDescription on
    # an IFD that had none, a key added to a description) is judged by the output's own re-plan.
    # Unknown fields and failing values are the other checks' to report; a value the plan itself
    # wrote (a {new_id} replacement, re-planned without the ID) is the plan's, not a leftover.
    written = {(d.field.key, str(d.new_value)) for d in plan.fields if d.action not in (REMOVE, KEEP)}
    again = [d.field.path for d in ctx.replan.fields if d.action == REMOVE and not d.unknown
             and not value_failed(d) and (d.field.key, d.field.text()) not in written]
    ctx.report.record(Check.PLAN_HELD, not again, f"{len(again)} field(s) the profile removes, as {again[0]}"
                      if again else "none removed",
                      part="output re-planned")


def _unreferenced_bytes(ctx: TiffContext) -> None:
    """No text where no reader looks: the needle scan knows only the source's removed values, so
    a name the source never held in its metadata would pass it in such a gap."""
    n = unreferenced_nonzero(ctx.out_path, ctx.output)
    ctx.report.record(Check.PLAN_HELD, n == 0, f"{n} non-zero byte(s) outside the structure" if n else
                      "all zero", part="unreferenced bytes")


_DECLARATION = re.compile(rb"\s*(\xef\xbb\xbf)?\s*<\?xml[^>]*\?>")


def xml_markup(tf: TiffFile) -> list[str]:
    """Paths of text values that are XML holding markup the writers never write: a comment, a
    processing instruction, a DTD or CDATA after the declaration. The XML parser drops them, so
    the re-planned items never show their text; the writers serialise items only."""
    out = []
    for ifd in tf.all_ifds():
        for tag, e in ifd.entries.items():
            if e.type not in (1, 2, 7) or not e.raw.lstrip()[:5].lstrip(b"\xef\xbb\xbf").startswith(b"<"):
                continue
            m = _DECLARATION.match(e.raw)
            body = e.raw[m.end() if m else 0:]
            if b"<!" in body or b"<?" in body:
                out.append(f"{ifd.path}/{tag}")
    return out


def _xml_markup(ctx: TiffContext) -> None:
    bad = xml_markup(ctx.output)
    ctx.report.record(Check.PLAN_HELD, not bad, f"comment, PI, DTD or CDATA in the XML of {bad[0]}" if bad else "none",
                      part="xml markup")


def _residual_needles(ctx: TiffContext) -> None:
    """Every non-pixel byte, and the JPEG tile headers, scanned for every needle."""
    needles = needles_for_plan(ctx.plan, ctx.identifiers)
    report_residual(ctx.report, needles, Scanner(needles.searched).scan(non_pixel_segments(ctx.out_path, ctx.output)))


def _compressed_streams(ctx: TiffContext) -> None:
    _check_streams(ctx.src, ctx.output, ctx.out_path, ctx.plan, ctx.kept_top, ctx.edited, ctx.full, ctx.report)


def _codec_ends(ctx: TiffContext) -> None:
    """Uncompressed, LZW and Deflate tiles of the output: nothing after their data, and (LZW,
    Deflate) no decoded bytes past their pixels (``tiff.codecends``, the rule the writer applied
    to the source, judged again on every such tile of the output)."""
    from ..tiff import codecends
    out, checked = ctx.output, 0
    for ifd in out.all_ifds():
        comp = ifd.value(259, 1)
        data = tiff_base.image_data(ifd, out.byteorder)
        if data is None or comp in (6, 7) or comp in tiff_base.J2K_COMPRESSIONS:
            continue  # the JPEG / JPEG 2000 stream rule's (_compressed_streams)
        if comp not in codecends.CHECKED:
            ctx.report.record(Check.COMPRESSED_STREAMS, False, tiff_base.unchecked_codec(ifd.path, comp),
                              part="codec ends")
            return
        try:
            codecends.check_tails(ctx.out_path, ifd.path, comp, data.src_offsets, data.src_counts,
                                  tiff_base.uncompressed_sizes(ifd, len(data.src_counts)))
        except MalformedFile as exc:
            ctx.report.record(Check.COMPRESSED_STREAMS, False, str(exc), part="codec ends")
            return
        checked += len(data.src_counts)
    if checked:
        ctx.report.record(Check.COMPRESSED_STREAMS, True, f"{checked} uncompressed/LZW/Deflate/PackBits tiles end with their data",
                          part="codec ends")


def _reader(ctx: TiffContext) -> None:
    view = ctx.source_view if ctx.source_view is not None else source_view(ctx.src.path, ctx.plan)
    _verify_openslide(view, ctx.out_path, ctx.plan, ctx.module, ctx.report)


def _regions_blank(ctx: TiffContext) -> None:
    """Regions read back flat through OpenSlide; JPEG 2000 tiles re-encoded to blank them
    (``--reencode-j2k``, regions or a macro's label) decode exactly to the source with the boxes filled."""
    reencoded = getattr(ctx.edited, "pixel_boxes", None)
    if not ctx.plan.regions and not reencoded and not ctx.plan.macro_boxes:
        ctx.report.not_applicable(Check.REGIONS_BLANK, "no region to blank")
        return
    if ctx.plan.regions:
        shown = getattr(ctx.module, "OPENSLIDE_CLIPS_LEVELS", False) or getattr(ctx.module, "LEVEL_SIZES_FROM_MAP", False)
        _regions_blanked(ctx.out_path, ctx.output, ctx.plan, ctx.report, levels_shown=shown)
    if ctx.plan.macro_boxes:
        _macro_labels_blanked(ctx.out_path, ctx.plan, ctx.report)
    if reencoded:
        from .reencode_check import check_reencoded_tiles
        ctx.report.record(Check.REGIONS_BLANK, *check_reencoded_tiles(ctx.src, ctx.output, ctx.out_path, ctx.kept_top,
                                                                      ctx.edited), part="j2k-reencoded")


STEPS = [(Check.REPARSE, _reparse), (Check.ROLES, _roles), (Check.IMAGE_DATA, _image_data),
         (Check.NO_UNKNOWN_FIELDS, _no_unknown_fields), (Check.VALUES_PASS_POLICY, _values_pass_policy),
         (Check.PLAN_HELD, _plan_held), (Check.PLAN_HELD, _unreferenced_bytes),
         (Check.PLAN_HELD, _xml_markup), (Check.RESIDUAL_NEEDLES, _residual_needles),
         (Check.COMPRESSED_STREAMS, _compressed_streams), (Check.COMPRESSED_STREAMS, _codec_ends),
         (Check.READER, _reader),
         (Check.REGIONS_BLANK, _regions_blank)]


EDITED_DECODE_SAMPLE = 8  # edited streams per image whose decoding is compared with the source's


SLACK_MAX_BYTES = 256 << 10
SLACK_SAMPLE = (1, 4)  # baseline streams per image (sample, full) Huffman-decoded for bytes after the last block


def _entropy_slack(fo, data, pick: np.ndarray, tables: bytes | None, height: int | None, full: bool) -> int:
    """Sampled baseline streams with whole bytes after the last block of an interval.

    Decoding is pure Python, so one stream per image (four with full, evenly
    spread over those re-parsed) is decoded, and none larger than
    SLACK_MAX_BYTES; streams the project's
    decoder does not read (progressive, 12-bit...) are not counted here.
    """
    from ..jpeg import JpegBlankingError
    from ..jpeg.compare import entropy_slack
    k = SLACK_SAMPLE[full]
    step = max(1, len(pick) // k)
    found = 0
    for t in pick[::step][:k].tolist():
        if data.src_counts[t] > SLACK_MAX_BYTES:
            continue  # a whole-level strip (NDPI): decoding it in Python would take minutes
        raw = os.pread(fo.fileno(), int(data.src_counts[t]), int(data.src_offsets[t]))
        try:
            found += entropy_slack(raw, tables, height) > 0
        except JpegBlankingError:
            continue
    return found


DECODE_MAX_COEFFICIENTS = 1 << 20  # ~25 MB while two decodings are compared (measured: 3.6 M took 88 MB)


def _too_large_to_decode(ifd) -> bool:
    """Whether comparing two decodings of one tile or strip of ``ifd`` would cost too much
    memory; the compressed size does not tell (a 216 kB NDPI strip of 992 x 1216 px took
    88 MB to compare decoded). Such streams are compared streamed instead, byte for byte
    against the rule's reduction (``jpegsegs.reduction_differs``)."""
    width, height = int(ifd.value(256, 0) or 0), int(ifd.value(257, 0) or 0)
    if ifd.has(322):
        width, height = int(ifd.value(322, 0) or 0), int(ifd.value(323, 0) or 0)
    else:
        height = min(height, int(ifd.value(278, height) or height))
    return width * height * int(ifd.value(277, 1) or 1) > DECODE_MAX_COEFFICIENTS


def _check_streams(src: TiffFile, out: TiffFile, out_path: str, plan: Plan, kept_top: list[int],
                   edited: dict[int, dict[int, bytes]], full: bool, rep: VerifyReport) -> None:
    """The JPEG / JPEG 2000 stream rule, re-checked on the output.

    Every copied stream is re-parsed (full mode: every tile; sample mode:
    the sampled tiles, whose bytes were shown equal to the source's, all of
    which passed the rule before writing, plus every edited one): nothing
    but decoding segments, nothing after the first EOI. JPEGTables holds
    only tables some tile uses. A sample of the streams edited by the rule
    (all with full) decodes exactly as its source: same DCT coefficients
    (baseline) or same pixels (other coding processes, JPEG 2000).
    """
    from ..jpeg import j2k, structure
    from ..jpeg.compare import same_decoding
    flat_src, flat_out = list(src.all_ifds()), list(out.all_ifds())
    # SubIFD levels are images of their own (their index counts past the top-level chain)
    src_images, out_images = src.image_ifds(), out.image_ifds()
    bad_streams = bad_tables = checked = compared = hidden = 0
    differ: list[str] = []
    replaced = {d.image.index for d in plan.images if d.action == "replace"}
    with open(out_path, "rb") as fo, open(src.path, "rb") as fs:
        for oi, si in enumerate(kept_top):
            if si in replaced:
                continue  # a generated label: written by this tool, nothing of the source
            s_ifd, o_ifd = src_images[si], out_images[oi]
            comp = o_ifd.value(259, 1)
            data = tiff_base.image_data(o_ifd, out.byteorder)
            if data is None or (comp not in (6, 7) and comp not in tiff_base.J2K_COMPRESSIONS):
                continue
            k = flat_src.index(s_ifd)
            new = as_tile_edits(edited.get(k, {}), src.path)
            n = len(data.src_offsets)
            pick = np.arange(n) if full else np.union1d(np.array(_sample(n, False), dtype=np.int64), new.indices())
            checked += len(pick)
            o_tables = o_ifd.entries[347].raw if o_ifd.has(347) else None
            s_tables = s_ifd.entries[347].raw if s_ifd.has(347) else None
            try:
                if comp in tiff_base.J2K_COMPRESSIONS:
                    for t in pick.tolist():
                        raw = os.pread(fo.fileno(), int(data.src_counts[t]), int(data.src_offsets[t]))
                        bad_streams += int(data.src_counts[t]) > 0 and not j2k.is_clean(raw)
                else:
                    pre = jpegsegs.table_keys(o_tables)
                    for t in jpegsegs.tiles_with_segments(out_path, data.src_offsets[pick],
                                                          data.src_counts[pick], pre).tolist():
                        t = int(pick[t])  # not single-scan baseline: the full parser judges it
                        raw = os.pread(fo.fileno(), int(data.src_counts[t]), int(data.src_offsets[t]))
                        bad_streams += not structure.is_clean(raw, pre)
                    if o_tables is not None:
                        used = jpegsegs.used_tables(out_path, data.src_offsets, data.src_counts, pre)
                        bad_tables += jpegsegs.clean_tables(o_tables, used) != o_tables
            except WsideidError:
                bad_streams += 1
            if comp == 7:
                hidden += _entropy_slack(fo, data, pick, o_tables, int(o_ifd.value(257, 0)) or None, full)
            # the source's tables only for its edited tiles (16 bytes a tile at verification's peak)
            sd = tiff_base.image_data(s_ifd, src.byteorder) if len(new.indices()) else None
            kind = "j2k" if comp in tiff_base.J2K_COMPRESSIONS else "jpeg"
            undecodable = _too_large_to_decode(s_ifd)
            for t in new.indices()[:None if full else EDITED_DECODE_SAMPLE].tolist():
                if undecodable or max(int(sd.src_counts[t]), new.length(t)) > jpegsegs.IN_MEMORY:
                    # too large to hold or to decode (a whole-level NDPI strip: a 216 kB stream
                    # of 4096 x 4096 px is 100 MB of coefficients): the output must be exactly
                    # the rule's reduction of the source, compared streamed
                    if t in new.opaque:
                        continue  # a blanked strip: its editor's own check covers it
                    compared += 1
                    why = jpegsegs.reduction_differs(src.path, int(sd.src_offsets[t]), int(sd.src_counts[t]),
                                                     out_path, int(data.src_offsets[t]), int(data.src_counts[t]),
                                                     kind, s_tables, o_tables)
                    if why:
                        differ.append(f"{o_ifd.path} tile {t}: {why}")
                    continue
                before = os.pread(fs.fileno(), int(sd.src_counts[t]), int(sd.src_offsets[t]))
                try:
                    rule_only = (j2k.clean(before) if kind == "j2k" else
                                 structure.clean(before, jpegsegs.table_keys(s_tables)).data) == new[t]
                except WsideidError:
                    rule_only = False
                if not rule_only:
                    continue  # a blanked tile: its editor's own check covers it
                compared += 1
                why = same_decoding(before, new[t], s_tables, o_tables, int(s_ifd.value(257, 0)) or None, kind)
                if why:
                    differ.append(f"{o_ifd.path} tile {t}: {why}")
    rep.record(Check.COMPRESSED_STREAMS, bad_streams == 0 and bad_tables == 0 and hidden == 0,
               f"{checked} streams re-parsed, {bad_streams} hold more than their decoding segments or bytes after "
               f"their end marker; {bad_tables} JPEGTables with unused tables; {hidden} sampled baseline streams "
               "with bytes after their last block", part="jpeg segments")
    rep.record(Check.COMPRESSED_STREAMS, not differ, "; ".join(differ[:3]) if differ else
               f"{compared} stream(s) edited by the stream rule decode exactly as their source", part="stream decoding")


def sample_digests(src: TiffFile, plan: Plan, edited: dict[int, dict[int, bytes]], full: bool) -> list[str]:
    """Digests of the tiles verification samples in every kept image. In-place
    mode compares them before and after, having no second file to compare."""
    import hashlib
    out: list[str] = []
    flat = list(src.all_ifds())
    images = src.image_ifds()
    with open(src.path, "rb") as fh:
        for d in plan.images:
            if d.action == "remove":
                continue
            ifd = images[d.image.index]
            data = tiff_base.image_data(ifd, src.byteorder)
            skip = edited.get(flat.index(ifd), {})
            for t in _sample(len(data.src_offsets), full):
                if t not in skip:
                    out.append(hashlib.sha256(os.pread(fh.fileno(), int(data.src_counts[t]),
                                                       int(data.src_offsets[t]))).hexdigest())
    return out


def _ifd_kept(plan: Plan, ifd_index: int | None, owners: list[int]) -> bool:
    """Whether the image owning flat IFD ``ifd_index`` is kept."""
    if ifd_index is None or ifd_index >= len(owners):
        return False
    top = owners[ifd_index]
    return any(d.image.index == top and d.action != "remove" for d in plan.images)


def _verify_openslide(view: SourceView, out_path: str, plan: Plan, module, rep: VerifyReport) -> None:
    """The ``reader`` check: OpenSlide as an independent judge (see the module docstring), its
    reading of the input taken before the output existed (``source_view``)."""
    try:
        import openslide
    except ImportError:  # pragma: no cover - dependency is declared
        rep.record(Check.READER, False, "OpenSlide is not installed")
        return
    if not view.opens:
        if view.refusal:
            rep.record(Check.READER, False, view.refusal)
        else:
            rep.not_applicable(Check.READER, "the input is not a format OpenSlide reads")
        return
    try:
        b = open_slide(out_path)  # (in a child first: a crash fails the check, not the run)
    except Exception as exc:
        rep.record(Check.READER, False, f"OpenSlide cannot open the output ({type(exc).__name__})")
        return
    try:
        va, vb = view.vendor, b.properties.get("openslide.vendor")
        want = getattr(module, "OPENSLIDE_VENDOR", va)
        expected, kept_levels = expected_levels(plan, view.level_dimensions)
        if getattr(module, "LEVEL_SIZES_FROM_MAP", False):
            kept_levels = []  # OpenSlide sizes levels from the vendor's map (SCN: the slide in nm), not the IFDs
        got = tuple(b.level_dimensions)
        # a driver whose reader clips padded levels (Philips) names how many, not which sizes
        shown = (len(kept_levels) == len(got) if getattr(module, "OPENSLIDE_CLIPS_LEVELS", False)
                 else set(kept_levels) <= set(got))
        same = va == vb == want and got == expected and shown
        if va != want:
            detail = f"OpenSlide reads the input as {va}, not {want}: the {module.NAME} roles cannot be trusted"
        elif vb != va:
            detail = f"output opens as {vb}, input as {va}"
        elif not same:
            detail = (f"levels {list(got)} in the output; the input's {list(view.level_dimensions)} "
                      f"without the removed images give {list(expected)}")
        else:
            detail = f"vendor {vb}, {b.level_count} levels"
        rep.record(Check.READER, same, detail, part="openslide")
        kept_roles = {d.image.role for d in plan.images if d.action != "remove"}
        removed_roles = {d.image.role for d in plan.images if d.action == "remove"}
        leaked = sorted(n for n in b.associated_images
                        if (n in ("label", "macro") and n not in kept_roles) or n in removed_roles)
        rep.record(Check.READER, not leaked, f"{sorted(b.associated_images)}", part="associated images")
        if not same or plan.regions:
            return  # pixels of different pyramids cannot be compared; blanked regions differ by design
        # got == expected here: the output's last level is the one the view read its region at.
        # Corrupt tiles make OpenSlide raise on read_region: an output that
        # reads where the input did not (or the reverse) fails; both
        # unreadable is the input's own damage, faithfully copied.
        lv = b.level_count - 1
        size = region_size(tuple(b.level_dimensions[lv]))
        pa, pb = view.region, read_region(b, (0, 0), lv, size)
        if pa is None or pb is None:
            rep.record(Check.READER, pa is None and pb is None,
                       f"level {lv} region {size} unreadable in {'input and output' if pa is pb else 'one of them'}",
                       part="pixels")
        else:
            rep.record(Check.READER, bool((pa == pb).all()), f"level {lv} region {size} compared", part="pixels")
    finally:
        b.close()


REGION_INSET = 2  # px inside a region's edge at each image: chroma upsampling blends the last ones
REGION_SPREAD = 12  # grey levels a blanked (DC-only) area may vary by once decoded


def _regions_blanked(out_path: str, parsed: TiffFile, plan: Plan, rep: VerifyReport, levels_shown: bool = False) -> None:
    """The ``regions-blank`` check: every pixel of every region (less ``REGION_INSET``), read
    through OpenSlide on every kept level and the thumbnail it shows, and through the project's
    own window reader on every kept level or thumbnail OpenSlide does not show (SubIFD levels,
    unlisted thumbnails), in bounded windows, is flat. (It used to read a 64 px square at the
    centre of level 0 only: a region blanked in part, or on level 0 alone, passed.)
    ``levels_shown``: the vendor's reader shows every top-level level at a size of its own
    (Philips clips padding, SCN sizes from its map), so none of them is read a second time."""
    from ..regions import flat_regions
    try:
        b = open_slide(out_path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is judged below
        if rep.result(Check.READER).status is CheckStatus.NOT_APPLICABLE:
            rep.record(Check.REGIONS_BLANK, False, "OpenSlide does not read this format: the blanked regions "
                       "cannot be read back")
        else:
            rep.record(Check.REGIONS_BLANK, False, f"OpenSlide cannot open the output ({type(exc).__name__})")
        return
    with b, contextlib.ExitStack() as own:
        try:  # OpenSlide reads the associated images and levels here (a damaged thumbnail raised)
            base = tuple(b.level_dimensions[0])
            targets = [(*t, base) for t in _blanked_images(b, plan)]
        except Exception as exc:  # noqa: BLE001 - an image OpenSlide cannot read back fails the check
            rep.record(Check.REGIONS_BLANK, False, f"OpenSlide cannot read a kept image back ({type(exc).__name__})")
            return
        try:
            targets += _own_read_images(out_path, parsed, b, plan, levels_shown, own)
        except Exception as exc:  # noqa: BLE001 - an image that cannot be read back fails the check
            rep.record(Check.REGIONS_BLANK, False, f"a kept image cannot be read back ({exc})", part="own reader")
            return
        try:
            found = list(flat_regions(plan.regions, targets, lambda size: REGION_INSET, REGION_SPREAD))
        except Exception as exc:  # noqa: BLE001 - a region OpenSlide cannot read back is not shown blank
            rep.record(Check.REGIONS_BLANK, False, f"a region cannot be read back ({type(exc).__name__})")
            return
        for part, ok, detail in found:
            rep.record(Check.REGIONS_BLANK, ok, detail, part=part)


def _macro_labels_blanked(out_path: str, plan: Plan, rep: VerifyReport) -> None:
    """A kept macro's label box (``--macro blank-label``), read back from the output through the
    project's own reader (bounded: reduced when large) and required flat. ``image-data`` proves
    the written tiles are the editor's bytes, not that those bytes are blank."""
    from ..regions import box_spread, inset, scale_box
    from ..tiff.pixels import read_tiff_image
    kept = [d.image for d in plan.images if d.action != "remove"]
    out_of = {im.index: k for k, im in enumerate(kept)}
    for index, box in plan.macro_boxes:
        source = next(im for im in kept if im.index == index)
        try:
            px = np.asarray(read_tiff_image(out_path, out_of[index]).convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - an unreadable macro is a failed check
            rep.record(Check.REGIONS_BLANK, False, f"the kept macro cannot be read back ({type(exc).__name__})",
                       part=f"macro {index} label")
            continue
        h, w = px.shape[:2]
        area = inset(scale_box(box, w / source.width, h / source.height, w, h), REGION_INSET)
        spread = None if area is None else box_spread(lambda x, y, cw, ch: px[y:y + ch, x:x + cw], area)
        rep.record(Check.REGIONS_BLANK, spread is not None and spread <= REGION_SPREAD,
                   "label box too small to read back" if spread is None else
                   f"label box read back: spread {spread} grey levels", part=f"macro {index} label")


def _own_read_images(out_path: str, parsed: TiffFile, b, plan: Plan, levels_shown: bool,
                     stack: contextlib.ExitStack) -> list:
    """(name, size, read, level-0 size) for the kept levels and thumbnails OpenSlide does not
    show, read from the output's stored tiles (``tiff.window``) and scaled as the editor scaled
    them (``redaction.plan_regions``: the plan's largest level)."""
    from ..tiff.window import WindowReader
    top = [d.image for d in plan.images if d.action != "remove" and not d.image.extra.get("embedded")]
    levels = [(im.width, im.height) for im in top if im.role == "level"]
    if not levels:
        return []
    base = max(levels)
    shown = {tuple(x) for x in b.level_dimensions}
    thumb = b.associated_images["thumbnail"].size if "thumbnail" in list(b.associated_images) else None
    out = []
    for k, im in enumerate(top):
        size, sub = (im.width, im.height), im.extra.get("parent") is not None
        if im.role not in ("level", "thumbnail"):
            continue
        if not sub and ((im.role == "level" and (levels_shown or size in shown)) or (im.role == "thumbnail" and size == thumb)):
            continue
        reader = stack.enter_context(WindowReader(out_path, k, parsed))
        if (reader.width, reader.height) != size:
            raise WsideidError(f"output image {k} is {reader.width}x{reader.height}, the plan kept {size[0]}x{size[1]}")
        out.append((f"{'SubIFD ' if sub else ''}{im.role} {k} (own reader)", size, reader.read, base))
    return out


def _blanked_images(b, plan: Plan) -> list:
    """``regions.level_readers`` of the output, and its thumbnail when OpenSlide lists one of the
    kept thumbnail's size (the regions are blanked on it too)."""
    from ..regions import level_readers
    out = level_readers(b)
    sizes = {(d.image.width, d.image.height) for d in plan.images if d.action != "remove" and d.image.role == "thumbnail"}
    if "thumbnail" in list(b.associated_images):  # the names: ``in`` on the mapping decodes the image
        thumb = np.asarray(b.associated_images["thumbnail"].convert("RGB"))
        if (thumb.shape[1], thumb.shape[0]) in sizes:
            out.append(("thumbnail", (thumb.shape[1], thumb.shape[0]),
                        lambda x, y, cw, ch, t=thumb: t[y:y + ch, x:x + cw]))
    return out
