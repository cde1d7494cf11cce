"""Verification of de-identified DICOM instances before they are published.

The output files are re-read from disk, independently of the writer, and
checked against the plan: they parse; every header holds exactly what the
plan says (nothing removed is present, nothing unknown is left); every UID
is a keyed one; VOLUME/THUMBNAIL frame bytes equal the source's; no removed
value or date spelling occurs in any non-pixel byte; wsidicom and OpenSlide
open the slide as they opened the input; dciodvfy reports no new error.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..model import REMOVE, Plan, VerifyReport
from ..needles import Hit, Needle, NeedleKind, Scanner, needles_for_plan, report_residual
from ..streamheads import read_range, stream_headers
from . import dciodvfy
from .labels import SET_KEYWORDS
from .pixels import PixelSpan, same_fragments
from .readers import Pending, Reader, ReadersFailed, start
from .redact import check_frame, read_frames
from .plan import DicomPlanData, tag_name, value_text
from .source import Instance, read_instance
from .uids import is_registry_uid

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


def _uids(ds: Dataset, keep: set[str]) -> list[str]:
    found = []
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.keyword not in keep and elem.value:
            vals = elem.value if type(elem.value).__name__ == "MultiValue" else [elem.value]
            found += [str(v) for v in vals if not is_registry_uid(str(v))]
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
        offs = np.array([o for o, _ in span.fragments], dtype=np.int64)
        cnts = np.array([n for _, n in span.fragments], dtype=np.int64)
        yield from stream_headers(path, offs, cnts)


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


def verify_dicom(plan: Plan, written: list[tuple[Instance, str, Dataset]], full: bool = False,
                 identifiers: Sequence[str] = ()) -> VerifyReport:
    """``written``: (source instance, output file, header we meant to write) for every kept instance."""
    data: DicomPlanData = plan.inventory.container
    rep = VerifyReport()
    outs: list[Instance] = []
    for inst, path, _ in written:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(path, defer_size="1 MB")
                outs.append(read_instance(path, inst.index))
        except Exception as exc:  # noqa: BLE001 - any failure to re-read is a failed check
            rep.add("reparse", False, f"instance {inst.index} does not re-read: {type(exc).__name__}")
            return rep
    rep.add("reparse", True, f"{len(outs)} instance(s) re-read with pydicom")
    readers = _start_readers(written)

    # Headers: exactly as planned, nothing removed present, nothing unknown.
    mismatch = []
    for (inst, _, intended), out in zip(written, outs):
        want = flatten(intended, f"inst[{inst.index}]", {})
        got = flatten(out.ds, f"inst[{inst.index}]", {})
        if want != got:
            diff = sorted(set(want.items()) ^ set(got.items()))
            mismatch.append(f"instance {inst.index}: {len(diff)} element(s) differ from the plan")
    rep.add("written-as-planned", not mismatch, "; ".join(mismatch[:3]))

    dropped: dict[str, set[int]] = defaultdict(set)
    for p, op in data.ops.items():
        if op.kind == "drop-item":
            seq, k = p[:-1].rsplit("[", 1)
            dropped[seq].add(int(k))
    kept_idx = {inst.index for inst, _, _ in written}
    present: set[str] = set()
    for (inst, _, _), out in zip(written, outs):
        present.update(flatten(out.ds, f"inst[{inst.index}]", {}))
    leftovers = [d.field.path for d in plan.fields if d.action == REMOVE and d.field.ifd in kept_idx
                 and "/meta/" not in d.field.path and _output_path(d.field.path, dropped) in present]
    regenerated = {f"inst[{d.image.index}]/{kw}" for d in plan.images if d.action == "replace" for kw in SET_KEYWORDS}
    leftovers = [p for p in leftovers if not _kept_elsewhere(p, plan, dropped) and p not in regenerated]
    rep.add("removed-fields-absent", not leftovers, ", ".join(leftovers[:5]))

    from .plan import make_dicom_plan
    from .source import DicomSource
    from .uids import UidMapper
    from ..keys import Secret
    replan = make_dicom_plan(DicomSource(plan.inventory.path, False, outs, 0), plan.profile, data.rules,
                             UidMapper(Secret(b"\0" * 32, "verification")), data.policy, data.new_id or "x",
                             False, True, "remove")
    unknown = sorted({d.field.key for d in replan.unknowns()})
    rep.add("no-unknown-fields", not unknown, f"{len(unknown)} unknown: {', '.join(unknown[:5])}" if unknown else "")

    new_uids = set(data.uids.mapped.values()) | data.uids.retained
    bad = [u for out in outs for u in _uids(out.ds, data.rules.uid_keep) if u not in new_uids]
    rep.add("uids-replaced", not bad, f"{len(bad)} UID(s) not from the keyed mapping" if bad else
            f"{len(data.uids.mapped)} UIDs mapped")

    # Pixels: frame bytes identical to the source.
    checked, differ = 0, []
    for (inst, path, _), out in zip(written, outs):
        if inst.span is None or out.span is None or inst.role == "label":
            continue
        sample = None if full or inst.span.size <= FULL_COMPARE_BYTES else SAMPLE_FRAMES
        edited = dict(_edited(data, inst))  # frame edits: their bytes are made when compared
        same, n = same_fragments(inst.path, inst.span, path, out.span, sample, edited)
        checked += n
        if not same:
            differ.append(str(inst.index))
    rep.add("pixels-identical", not differ, f"{checked} frame(s) compared" +
            (" (blanked frames against the editor's bytes)" if data.frame_edits and data.frame_edits.frames else "") +
            (f"; instance(s) {', '.join(differ)} differ" if differ else ""))
    if data.frame_edits is not None and plan.regions:
        _check_blanked(data, written, outs, rep)
    from .frames import check_frames
    rep.add("frame-streams", *check_frames(written, outs, lambda i: _edited(data, i), full))

    # Residual scan of every non-pixel byte.
    needles = needles_for_plan(plan, identifiers)
    needles.extend(Needle(u, NeedleKind.UID, "the UID mapping") for u in sorted(data.uids.mapped))
    scanner = Scanner(needles.needles)
    hits: list[Hit] = []
    for (inst, path, _), out in zip(written, outs):
        hits += [Hit(h.needle, h.encoding, h.offset, f"instance {inst.index}")
                 for h in scanner.scan(_non_pixel_segments(path, out.span))]
    report_residual(rep, needles, hits)

    _check_readers(plan, written, rep, readers)
    _check_dciodvfy(written, rep)
    return rep


def _edited(data: DicomPlanData, inst: Instance) -> dict:
    return data.frame_edits.of(inst.index) if data.frame_edits is not None else {}


def _check_blanked(data: DicomPlanData, written, outs: list[Instance], rep: VerifyReport) -> None:
    """Every blanked frame, read back from the output and decoded with Pillow, is the fill colour
    in its boxes; a kept Extended Offset Table points at the frames written."""
    problems, frames = [], 0
    for (inst, path, _), out in zip(written, outs):
        edited = _edited(data, inst)
        if not edited or out.span is None:
            continue
        got = read_frames(path, out.span, sorted(edited))
        for k, e in edited.items():
            if not e.boxes:
                continue  # changed by the stream rule only: checked under frame-streams
            frames += 1
            why = check_frame(got[k], e.boxes, data.frame_edits.fill)
            if why:
                problems.append(f"instance {inst.index} frame {k + 1}: {why}")
        eot = out.ds.get("ExtendedOffsetTable")
        if eot is not None:
            first = out.span.fragments[0][0] - 8 if out.span.fragments else 0
            want = [o - 8 - first for o, _ in out.span.fragments]
            if list(struct.unpack(f"<{len(eot) // 8}Q", bytes(eot))) != want:
                problems.append(f"instance {inst.index}: Extended Offset Table does not match the frames")
    rep.add("regions-blanked", not problems,
            "; ".join(problems[:3]) if problems else f"{frames} frame(s) decode to the fill colour in the region")


def _kept_elsewhere(path: str, plan: Plan, dropped: dict[str, set[int]]) -> bool:
    """A removed path that another, kept element now occupies (after items were dropped)."""
    target = _output_path(path, dropped)
    return any(d.action != REMOVE and d.field.path != path and _output_path(d.field.path, dropped) == target
               for d in plan.fields if d.field.ifd is not None)


def _series(written: list[tuple[Instance, str, Dataset]]) -> dict[tuple[str, str], list[tuple[Instance, str]]]:
    groups: dict[tuple[str, str], list[tuple[Instance, str]]] = defaultdict(list)
    for inst, path, _ in written:
        groups[inst.study_series].append((inst, path))
    return groups


def _level_series(written: list[tuple[Instance, str, Dataset]]) -> list[list[tuple[Instance, str]]]:
    return [m for m in _series(written).values() if any(i.role == "level" for i, _ in m)]


def _start_readers(written: list[tuple[Instance, str, Dataset]]) -> Pending:
    """The readers check's child process (``readers``: wsidicom and OpenSlide are the run's
    largest imports), started before the other checks so that it runs beside them."""
    jobs: list[tuple[Reader, list[str]]] = []
    for members in _level_series(written):
        vol_src = next(i.path for i, _ in members if i.role == "level")
        vol_out = next(p for i, p in members if i.role == "level")
        jobs += [(Reader.WSIDICOM, [i.path for i, _ in members]), (Reader.WSIDICOM, [p for _, p in members]),
                 (Reader.OPENSLIDE, [vol_src]), (Reader.OPENSLIDE, [vol_out])]
    return start(jobs)


def _check_readers(plan: Plan, written: list[tuple[Instance, str, Dataset]], rep: VerifyReport,
                   pending: Pending) -> None:
    """wsidicom and OpenSlide must open the output wherever they opened the input."""
    notes_w, fails_w, notes_o, fails_o = [], [], [], []
    removed_roles = {d.image.role for d in plan.images if d.action == "remove"}
    series = _level_series(written)
    try:
        answers = pending.result()
    except ReadersFailed as exc:
        rep.add("wsidicom", False, str(exc))
        rep.add("openslide", False, str(exc))
        return
    for k in range(len(series)):
        src_w, out_w, src_o, out_o = answers[4 * k:4 * k + 4]
        src_levels = src_w.levels  # None: an input wsidicom cannot read is not ours to fix
        if out_w.levels is not None:
            if src_levels is not None and out_w.levels != src_levels:
                fails_w.append(f"levels {out_w.levels} != {src_levels}")
            else:
                notes_w.append(f"{len(out_w.levels)} level(s)")
        elif src_levels is not None:
            fails_w.append(f"cannot open the output ({out_w.error})")
        else:
            notes_w.append("input not readable by wsidicom; skipped")
        src_dims = src_o.levels
        if out_o.levels is not None:
            dims, assoc = out_o.levels, set(out_o.associated)
            leaked = assoc & removed_roles & {"label", "macro"}
            if src_dims is not None and dims != src_dims:
                fails_o.append(f"levels {dims} != {src_dims}")
            elif leaked:
                fails_o.append(f"removed image(s) still visible: {sorted(leaked)}")
            else:
                notes_o.append(f"{len(dims)} level(s), associated {sorted(assoc)}")
        else:
            (fails_o if src_dims is not None else notes_o).append(
                f"cannot open the output ({out_o.error})" if src_dims is not None
                else "input not readable by OpenSlide; skipped")
    rep.add("wsidicom", not fails_w, "; ".join(fails_w or notes_w or ["no VOLUME instance: skipped"]))
    rep.add("openslide", not fails_o, "; ".join(fails_o or notes_o or ["no VOLUME instance: skipped"]))


def _check_dciodvfy(written: list[tuple[Instance, str, Dataset]], rep: VerifyReport) -> None:
    if not dciodvfy.available():
        rep.add("dciodvfy", True, "dciodvfy not installed: skipped")
        return
    new = []
    for inst, path, _ in written:
        new += [f"instance {inst.index}: {e}" for e in dciodvfy.new_errors(inst.path, path)]
    rep.add("dciodvfy", not new, "; ".join(new[:3]) if new else f"{len(written)} file(s), no new error")
