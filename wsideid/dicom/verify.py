"""Verification of de-identified DICOM instances before they are published.

The output files are re-read from disk, independently of the writer, and
checked against the plan under the shared check names (``wsideid.checks``;
the table per driver is in docs/architecture.md): they parse (``reparse``);
every header holds exactly what the plan says and nothing removed is present
(``plan-held``), nothing unknown is left (``no-unknown-fields``); every UID is
a keyed one (``identifiers-replaced``); the kept instances have their roles
(``roles``); frame bytes equal the source's (``image-data``) and hold only
decoding segments (``compressed-streams``); blanked regions decode to the fill
(``regions-blank``); no removed value or date spelling occurs in any non-pixel
byte (``residual-needles``); wsidicom and OpenSlide open the slide as they
opened the input (``reader``); dciodvfy reports no new error (``validator``).
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..checks import Check, StopChecks, VerifyContext, VerifyReport, run_checks
from ..model import REMOVE, Plan
from ..needles import Hit, Needle, NeedleKind, Scanner, needles_for_plan, report_residual
from ..streamheads import HeaderMemo, distinct_headers, read_range
from . import dciodvfy
from .labels import SET_KEYWORDS
from .pixels import PixelSpan, same_fragments
from .readers import Opening, Pending, Reader, ReadersFailed, start
from .redact import check_frame, read_frames
from .plan import DicomPlanData, tag_name, value_text
from .source import Instance, read_instance
from .uids import is_standard_uid

SAMPLE_FRAMES = 16
FULL_COMPARE_BYTES = 256 << 20


def flatten(ds: Dataset, prefix: str, out: dict[str, str]) -> dict[str, str]:
    """path -> printable value for every element, recursively (the verifier's view of a header)."""
    for elem in ds:
        if int(elem.tag) == 0x7FE00010:
            continue  # pixel data is compared frame by frame, not here
        path = f"{prefix}/{elem.keyword or tag_name(int(elem.tag))}"
        out[path] = value_text(elem)
        if elem.VR == "SQ":
            for k, item in enumerate(elem.value or []):
                flatten(item, f"{path}[{k}]", out)
    return out


def _uids(ds: Dataset, schemes: frozenset[str]) -> list[str]:
    """Every UID of the output that is not the standard's: each must be one of this run's keyed
    UIDs. The attributes the profile keeps unchanged (``uid_keep``) are no exemption: their values
    must be the standard's too (round 6: a UID under the registry's root was kept unread)."""
    found = []
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value:
            vals = elem.value if type(elem.value).__name__ == "MultiValue" else [elem.value]
            found += [str(v) for v in vals if not is_standard_uid(str(v), schemes)]
    return found


def _non_pixel_segments(path: str, span: PixelSpan | None) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of everything outside the frames' entropy-coded data: the header and
    anything after the pixel data, the pixel element's own header and offset table, and the
    header of every JPEG / JPEG 2000 fragment (before its entropy-coded data)."""
    with open(path, "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        if span is None:
            yield from read_range(fd, 0, size)
            return
        yield from read_range(fd, 0, span.start)
        if span.encapsulated and span.fragments:
            first = span.fragments[0][0] - 8  # the first fragment's item header
            yield from read_range(fd, span.start, first)
        yield from read_range(fd, span.end, size)
    if span.encapsulated and span.fragments:
        # a header byte for byte like one already scanned holds the same needles: scanned once
        # (a 2 GB instance's 60,000 frames share one; each stands after its item header, apart
        # from the segment before it, so no needle can run into it from there)
        yield from distinct_headers(path, span.fragments.offsets, span.fragments.lengths, HeaderMemo())


def _output_path(path: str, dropped: dict[str, set[int]]) -> str:
    """Where an input path lands in the output once dropped items are gone."""
    parts = path.split("/")
    out, seen = [], []
    for p in parts:
        if p.endswith("]") and "[" in p and not p.startswith("inst["):
            name, k = p[:-1].split("[")
            seq = "/".join(seen + [name])
            k2 = int(k) - sum(1 for d in dropped.get(seq, ()) if d < int(k))
            out.append(f"{name}[{k2}]")
        else:
            out.append(p)
        seen.append(p)
    return "/".join(out)


NOT_APPLICABLE = {
    Check.VALUES_PASS_POLICY: "DICOM values are judged by their VR and pattern when planned; "
                              "the written header equals the planned one (plan-held)",
    Check.OUTPUT_HASH: "no output hash recorded (--hash none, or an existing output): a run hashes the "
                       "instances on disk and proves them unchanged since written",
}


@dataclass
class DicomContext(VerifyContext):
    """The objects the DICOM checks read: the plan and, per kept instance, (source instance,
    output file, header we meant to write); ``outs`` are the output instances re-read."""

    plan: Plan
    written: list[tuple[Instance, str, Dataset]]
    outs: list[Instance] = field(default_factory=list)
    readers: "_Readers | None" = None  # the readers check's child, started before the first check
    validator: "dciodvfy.Runs | None" = None  # dciodvfy's runs, started before the first check

    @property
    def data(self) -> DicomPlanData:
        return self.plan.inventory.container

    def pairs(self) -> Iterator[tuple[tuple[Instance, str, Dataset], Instance]]:
        return zip(self.written, self.outs)


def new_report() -> VerifyReport:
    """A report with the checks that never apply to DICOM declared so."""
    return VerifyReport(NOT_APPLICABLE)


def verify_dicom(plan: Plan, written: list[tuple[Instance, str, Dataset]], full: bool = False,
                 identifiers: Sequence[str] = (), report: VerifyReport | None = None) -> VerifyReport:
    """``written``: (source instance, output file, header we meant to write) for every kept instance.
    Every check of the vocabulary (``wsideid.checks``), into ``report`` when given."""
    ctx = DicomContext(report or new_report(), full, identifiers, plan, written)
    ctx.readers = _start_readers(ctx.written, ctx.report)  # runs beside every other check; read by _reader
    if dciodvfy.available():  # likewise, read by _validator
        ctx.validator = dciodvfy.Runs([(inst.path, path) for inst, path, _ in ctx.written])
    try:
        return run_checks(ctx, STEPS)
    finally:
        ctx.readers.close()  # an earlier check ended the run: its answers are not wanted
        if ctx.validator is not None:
            ctx.validator.close()


def _reparse(ctx: DicomContext) -> None:
    for inst, path, _ in ctx.written:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ctx.outs.append(read_instance(path, inst.index))
        except Exception as exc:  # noqa: BLE001 - any failure to re-read is a failed check
            ctx.report.record(Check.REPARSE, False, f"instance {inst.index} does not re-read: {type(exc).__name__}")
            raise StopChecks from None
    ctx.report.record(Check.REPARSE, True, f"{len(ctx.outs)} instance(s) re-read with pydicom")


def _plan_held(ctx: DicomContext) -> None:
    """Headers exactly as planned, and nothing removed present."""
    plan, data = ctx.plan, ctx.data
    mismatch = []
    for (inst, _, intended), out in ctx.pairs():
        want = flatten(intended, f"inst[{inst.index}]", _meta(intended, inst.index))
        got = flatten(out.ds, f"inst[{inst.index}]", _meta(out.ds, inst.index))
        if want != got:
            diff = sorted(set(want.items()) ^ set(got.items()))
            mismatch.append(f"instance {inst.index}: {len(diff)} element(s) differ from the plan")
    ctx.report.record(Check.PLAN_HELD, not mismatch, "; ".join(mismatch[:3]) or
                      f"{len(ctx.outs)} header(s) equal the planned ones", part="written as planned")
    # The header comparison sees neither the 128-byte preamble (no element) nor what follows the
    # pixel data (read headers stop before it): the writer zeroes the one and writes nothing
    # after the other, and a name in either would leave unread by any DICOM reader.
    dirty = [f"instance {inst.index}: preamble not zero" for (inst, _, _), out in ctx.pairs()
             if getattr(out.ds, "preamble", None) != bytes(128)]
    dirty += [f"instance {inst.index}: bytes after the pixel data" for (inst, _, _), out in ctx.pairs() if out.trailing]
    ctx.report.record(Check.PLAN_HELD, not dirty, dirty[0] if dirty else "none", part="preamble and tail")

    dropped: dict[str, set[int]] = defaultdict(set)
    for p, op in data.ops.items():
        if op.kind == "drop-item":
            seq, k = p[:-1].rsplit("[", 1)
            dropped[seq].add(int(k))
    kept_idx = {inst.index for inst, _, _ in ctx.written}
    present: set[str] = set()
    for (inst, _, _), out in ctx.pairs():
        present.update(flatten(out.ds, f"inst[{inst.index}]", {}))
    leftovers = [d.field.path for d in plan.fields if d.action == REMOVE and d.field.ifd in kept_idx
                 and "/meta/" not in d.field.path and _output_path(d.field.path, dropped) in present]
    regenerated = {f"inst[{d.image.index}]/{kw}" for d in plan.images if d.action == "replace" for kw in SET_KEYWORDS}
    kept_at = _kept_at(plan, dropped) if leftovers else {}
    leftovers = [p for p in leftovers if not kept_at.get(_output_path(p, dropped), set()) - {p}
                 and p not in regenerated]
    ctx.report.record(Check.PLAN_HELD, not leftovers, f"still in the output: {', '.join(leftovers[:5])}" if leftovers
                      else f"{sum(d.action == REMOVE for d in plan.fields)} removed element(s) absent",
                      part="removed fields absent")


def _meta(ds: Dataset, index: int) -> dict[str, str]:
    """The file meta group (0002) as the verifier sees it: every element but its group length
    (the writer computes that), so an element the plan did not write there is a difference."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return {}
    return {path: v for path, v in flatten(meta, f"inst[{index}]/meta", {}).items()
            if not path.endswith("/FileMetaInformationGroupLength")}


def _no_unknown_fields(ctx: DicomContext) -> None:
    from .plan import make_dicom_plan
    from .source import DicomSource
    from .uids import UidMapper
    from ..keys import Secret
    data, plan = ctx.data, ctx.plan
    uids = UidMapper(Secret(b"\0" * 32, "verification"), data.rules.coding_scheme_uids)
    replan = make_dicom_plan(DicomSource(plan.inventory.path, False, ctx.outs, 0), plan.profile, data.rules,
                             uids, data.policy, data.new_id or "x", False, True, "remove")
    unknown = sorted({d.field.key for d in replan.unknowns()})
    ctx.report.record(Check.NO_UNKNOWN_FIELDS, not unknown, f"{len(unknown)} unknown: {', '.join(unknown[:5])}"
                      if unknown else f"{len(replan.fields)} element(s), all known to the profile")


def _identifiers_replaced(ctx: DicomContext) -> None:
    data = ctx.data
    new_uids = set(data.uids.mapped.values()) | data.uids.retained
    bad = [u for out in ctx.outs for u in _uids(out.ds, data.rules.coding_scheme_uids) if u not in new_uids]
    ctx.report.record(Check.IDENTIFIERS_REPLACED, not bad, f"{len(bad)} UID(s) not from the keyed mapping" if bad else
                      f"{len(data.uids.mapped)} UIDs mapped")


def _roles(ctx: DicomContext) -> None:
    """The output holds exactly the kept instances, each with its planned role, and no other file."""
    planned = {d.image.index: d.image.role for d in ctx.plan.images if d.action != "remove"}
    got = {inst.index: out.role for (inst, _, _), out in ctx.pairs()}
    problems = []
    if sorted(got) != sorted(planned):
        problems.append(f"instances {sorted(got)} written, {sorted(planned)} kept by the plan")
    problems += [f"instance {k} reads as {got[k]}, planned {planned[k]}" for k in sorted(got)
                 if k in planned and got[k] != planned[k]]
    folders = {os.path.dirname(path) for _, path, _ in ctx.written}
    paths = {os.path.abspath(path) for _, path, _ in ctx.written}
    if len(ctx.written) > 1 or len(folders) > 1:
        extra = sorted(n for f in folders for n in os.listdir(f) if os.path.abspath(os.path.join(f, n)) not in paths)
        if extra:
            problems.append(f"{len(extra)} other file(s) in the output")
    ctx.report.record(Check.ROLES, not problems, "; ".join(problems[:3]) or
                      f"{len(got)} instance(s): {', '.join(sorted(set(got.values())))}")


def _image_data(ctx: DicomContext) -> None:
    """Frame bytes identical to the source's (blanked frames to the editor's)."""
    data = ctx.data
    checked, differ = 0, []
    for (inst, path, _), out in ctx.pairs():
        if inst.span is None or out.span is None or inst.role == "label":
            continue
        sample = None if ctx.full or inst.span.size <= FULL_COMPARE_BYTES else SAMPLE_FRAMES
        edited = dict(_edited(ctx.plan, inst))  # frame edits: their bytes are made when compared
        same, n = same_fragments(inst.path, inst.span, path, out.span, sample, edited)
        checked += n
        if not same:
            differ.append(str(inst.index))
    ctx.report.record(Check.IMAGE_DATA, not differ, f"{checked} frame(s) compared" +
                      (" (blanked frames against the editor's bytes)" if ctx.plan.frame_edits and ctx.plan.frame_edits.frames
                       else "") + (f"; instance(s) {', '.join(differ)} differ" if differ else ""))


def _regions_blank(ctx: DicomContext) -> None:
    """The regions and an overview's label area (``plan.macro_boxes``): JPEG frames decode to the
    fill and keep the source's coefficients outside the boxes; native and re-encoded JPEG 2000
    frames decode exactly to the source with the boxes filled (``blankcheck``)."""
    from .blankcheck import check_jpeg_outside, check_pixel_domain_blanking, check_region_coverage
    if not ctx.plan.regions and not ctx.plan.macro_boxes:
        ctx.report.not_applicable(Check.REGIONS_BLANK, "no region to blank")
    elif ctx.plan.frame_edits is None:
        ctx.report.record(Check.REGIONS_BLANK, False, "regions asked for, but no frame edit was planned")
    else:
        _check_blanked(ctx.plan, ctx.written, ctx.outs, ctx.report)
        ctx.report.record(Check.REGIONS_BLANK, *check_region_coverage(ctx.plan, ctx.written, ctx.outs), part="coverage")
        ctx.report.record(Check.REGIONS_BLANK, *check_pixel_domain_blanking(ctx.plan.frame_edits, ctx.written,
                                                                            ctx.outs), part="pixel-domain")
        ctx.report.record(Check.REGIONS_BLANK, *check_jpeg_outside(ctx.plan.frame_edits, ctx.written, ctx.full),
                          part="jpeg-outside")


def _compressed_streams(ctx: DicomContext) -> None:
    from .frames import check_frames
    ok, detail = check_frames(ctx.written, ctx.outs, lambda i: _edited(ctx.plan, i), ctx.full)
    ctx.report.record(Check.COMPRESSED_STREAMS, ok, detail)


def _residual_needles(ctx: DicomContext) -> None:
    """Every non-pixel byte of every instance, scanned for every needle and every replaced UID."""
    needles = needles_for_plan(ctx.plan, ctx.identifiers)
    needles.extend(Needle(u, NeedleKind.UID, "the UID mapping") for u in sorted(ctx.data.uids.mapped))
    scanner = Scanner(needles.searched)
    hits: list[Hit] = []
    for (inst, path, _), out in ctx.pairs():
        hits += [Hit(h.needle, h.encoding, h.offset, f"instance {inst.index}")
                 for h in scanner.scan(_non_pixel_segments(path, out.span))]
    report_residual(ctx.report, needles, hits)


def _reader(ctx: DicomContext) -> None:
    if ctx.readers is None:
        ctx.report.record(Check.READER, False, "the readers were never started")
        return
    _check_readers(ctx.plan, ctx.report, ctx.readers)


def _validator(ctx: DicomContext) -> None:
    _check_dciodvfy(ctx.written, ctx.report, ctx.validator)


STEPS = [(Check.REPARSE, _reparse), (Check.PLAN_HELD, _plan_held), (Check.NO_UNKNOWN_FIELDS, _no_unknown_fields),
         (Check.IDENTIFIERS_REPLACED, _identifiers_replaced), (Check.ROLES, _roles), (Check.IMAGE_DATA, _image_data),
         (Check.REGIONS_BLANK, _regions_blank), (Check.COMPRESSED_STREAMS, _compressed_streams),
         (Check.RESIDUAL_NEEDLES, _residual_needles), (Check.READER, _reader), (Check.VALIDATOR, _validator)]


def _edited(plan: Plan, inst: Instance) -> dict:
    return plan.frame_edits.of(inst.index) if plan.frame_edits is not None else {}


def _check_blanked(plan: Plan, written, outs: list[Instance], rep: VerifyReport) -> None:
    """Every blanked frame, read back from the output and decoded with Pillow, is the fill colour
    in its boxes; a kept Extended Offset Table points at the frames written."""
    problems, frames = [], 0
    for (inst, path, _), out in zip(written, outs):
        edited = _edited(plan, inst)
        if not edited or out.span is None:
            continue
        # stream rule only: compressed-streams; native / JPEG 2000: the pixel-domain part
        jpeg = sorted(k for k, e in edited.items() if e.boxes and e.kind == "jpeg")
        for k in jpeg:  # one frame read at a time: memory does not grow with the region
            frames += 1
            why = check_frame(read_frames(path, out.span, [k])[k], edited[k].boxes, plan.frame_edits.fill)
            if why:
                problems.append(f"instance {inst.index} frame {k + 1}: {why}")
        eot = out.ds.get("ExtendedOffsetTable")
        if eot is not None:
            first = out.span.fragments[0][0] - 8 if out.span.fragments else 0
            want = [o - 8 - first for o, _ in out.span.fragments]
            if list(struct.unpack(f"<{len(eot) // 8}Q", bytes(eot))) != want:
                problems.append(f"instance {inst.index}: Extended Offset Table does not match the frames")
    rep.record(Check.REGIONS_BLANK, not problems,
               "; ".join(problems[:3]) if problems else f"{frames} frame(s) decode to the fill colour in the region")


def _kept_at(plan: Plan, dropped: dict[str, set[int]]) -> dict[str, set[str]]:
    """Output path -> the kept elements that land there (after items were dropped): a removed
    path another, kept element now occupies is not a leftover. Built once per plan: looked up
    per removed path, every field's output path was computed again for each (quadratic)."""
    out: dict[str, set[str]] = defaultdict(set)
    for d in plan.fields:
        if d.field.ifd is not None and d.action != REMOVE:
            out[_output_path(d.field.path, dropped)].add(d.field.path)
    return out


def _series(written: list[tuple[Instance, str, Dataset]]) -> dict[tuple[str, str], list[tuple[Instance, str]]]:
    groups: dict[tuple[str, str], list[tuple[Instance, str]]] = defaultdict(list)
    for inst, path, _ in written:
        groups[inst.study_series].append((inst, path))
    return groups


def _level_series(written: list[tuple[Instance, str, Dataset]]) -> list[list[tuple[Instance, str]]]:
    return [m for m in _series(written).values() if any(i.role == "level" for i, _ in m)]


@dataclass
class _Readers:
    """The readers check's questions, asked before any check runs: per level series and reader,
    the reason it does not support the slide (declared not applicable up front), else the
    index of its answers (input, output) in the child's."""

    pending: Pending
    series: list[tuple[Reader, str, str | None, int]]  # (reader, part name, unsupported why, first answer)

    def close(self) -> None:
        self.pending.close()


def _start_readers(written: list[tuple[Instance, str, Dataset]], rep: VerifyReport) -> _Readers:
    """The readers check's child process (``readers``: wsidicom and OpenSlide are the run's
    largest imports), started before the other checks so that it runs beside them. A reader
    that supports neither the input's nor the output's headers (``reader_support``) is
    declared not applicable now, and not asked; every other one must open the output."""
    from .reader_support import unsupported
    jobs: list[tuple[Reader, list[str]]] = []
    asked: list[tuple[Reader, str, str | None, int]] = []
    series = _level_series(written)
    intended = {path: ds for _, path, ds in written}
    for k, members in enumerate(series):
        src_headers = [i.ds for i, _ in members]
        out_headers = [intended[p] for _, p in members]
        for reader in (Reader.WSIDICOM, Reader.OPENSLIDE):
            part = reader.value if len(series) == 1 else f"{reader.value} series {k + 1}"
            why_in, why_out = unsupported(reader, src_headers), unsupported(reader, out_headers)
            if why_in is not None and why_out is not None:
                why = f"{reader.value} does not read this slide ({why_in})"
                rep.not_applicable(Check.READER, why, part=part)
                asked.append((reader, part, why, -1))
                continue
            if reader is Reader.OPENSLIDE:  # given one level file, OpenSlide finds the series' others itself
                picks = [next(j for j, (i, _) in enumerate(members) if i.role == "level")]
            else:
                picks = list(range(len(members)))
            asked.append((reader, part, None, len(jobs)))
            jobs += [(reader, [members[j][0].path for j in picks]), (reader, [members[j][1] for j in picks])]
    return _Readers(start(jobs), asked)


def _check_readers(plan: Plan, rep: VerifyReport, readers: _Readers) -> None:
    """wsidicom and OpenSlide must open the output wherever they support the slide: with the
    input's levels when they read the input, and showing no image the plan removed."""
    if not readers.series:
        rep.not_applicable(Check.READER, "no VOLUME instance for a reader to open")
        return
    try:
        answers = readers.pending.result()
    except ReadersFailed as exc:
        for reader, part, why, _ in readers.series:
            if why is None:
                rep.record(Check.READER, False, str(exc), part=part)
        return
    removed_roles = {d.image.role for d in plan.images if d.action == "remove"}
    for reader, part, why, at in readers.series:
        if why is not None:
            continue  # declared not applicable up front
        src, out = answers[at], answers[at + 1]
        ok, detail = _judge(reader, src, out, removed_roles)
        rep.record(Check.READER, ok, detail, part=part)


def _judge(reader: Reader, src: Opening, out: Opening, removed_roles: set[str]) -> tuple[bool, str]:
    """One reader's verdict on the output, given what it made of the input."""
    if out.levels is None:
        return False, f"cannot open the output ({out.error})" + (
            f"; nor the input ({src.error}), though it supports this kind of slide" if src.levels is None else "")
    if src.levels is not None and out.levels != src.levels:
        return False, f"levels {out.levels} != {src.levels}"
    leaked = set(out.associated) & removed_roles & {"label", "macro"}
    if leaked:
        return False, f"removed image(s) still visible: {sorted(leaked)}"
    detail = f"{len(out.levels)} level(s)" + (f", associated {sorted(out.associated)}"
                                              if reader is Reader.OPENSLIDE else "")
    if src.levels is None:
        detail += f" (the input did not open: {src.error})"
    return True, detail


def _check_dciodvfy(written: list[tuple[Instance, str, Dataset]], rep: VerifyReport,
                    runs: "dciodvfy.Runs | None" = None) -> None:
    """No new dciodvfy error in any output instance; ``runs``: the runs started with the
    verification (``dciodvfy.Runs``), else each pair is run now."""
    if not dciodvfy.available():
        rep.not_run(Check.VALIDATOR, "dciodvfy is not installed (Debian package dicom3tools; scripts/setup.sh installs it)")
        return
    found = runs.new_errors() if runs is not None else [dciodvfy.new_errors(i.path, p) for i, p, _ in written]
    new = []
    for (inst, _, _), errs in zip(written, found):
        new += [f"instance {inst.index}: {e}" for e in errs]
    rep.record(Check.VALIDATOR, not new, "; ".join(new[:3]) if new else f"{len(written)} file(s), no new error",
               part="dciodvfy")
