"""In-place de-identification, crash-safe, at a cost set by the metadata.

For labs that cannot afford a copy of every slide. Only on explicit request
(``--in-place``). The slide's image data never moves; the steps are:

1. plan as usual; build the new IFDs so they point at the tiles where they
   already are (edited tiles, e.g. stripped of APPn segments, go at the end);
2. write a journal next to the slide (original size and header) and fsync;
3. append the new metadata block (and edited tiles) at the end; fsync;
4. pre-verify the new block: it parses, the residual scan finds no removed
   value in it;
5. switch the header's first-IFD pointer to the new block: one write of 4 or
   8 bytes inside the first sector, atomic; fsync. The file is now the
   de-identified slide;
6. zero every byte the new structure does not reference (old IFDs and tag
   values, the label and macro, old versions of edited tiles); fsync;
7. verify the whole file as a copy would be verified, then remove the journal.

A crash before step 5 leaves the original (plus bytes past its end, which a
rerun truncates); after step 5 the file is the de-identified slide, and a
rerun finishes the wipe from the journal. There is never a file that is
neither.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import WsideidError
from ..checks import VerifyReport
from ..model import Plan

JOURNAL_SUFFIX = ".wsideid-inplace.json"


class InPlaceError(WsideidError):
    """In-place mode cannot proceed safely."""


def journal_path(path: str) -> str:
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{name}{JOURNAL_SUFFIX}")


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_journal(path: str, data: dict) -> None:
    jp = journal_path(path)
    tmp = jp + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, jp)
    _fsync_dir(jp)


def _header_slot(kind: str) -> tuple[int, int]:
    """(offset, size) of the first-IFD pointer in the header."""
    return {"classic": (4, 4), "bigtiff": (8, 8), "ndpi": (4, 8)}[kind]


def _pointer_bytes(kind: str, bo: str, first: int) -> bytes:
    import struct
    off, size = _header_slot(kind)
    return struct.pack(bo + ("I" if size == 4 else "Q"), first)


def recover(path: str) -> str | None:
    """Finish or undo an interrupted in-place run; returns what was done, or None."""
    jp = journal_path(path)
    if not os.path.exists(jp):
        return None
    try:
        with open(jp) as fh:
            j = json.load(fh)
    except (OSError, ValueError):
        raise InPlaceError("an in-place journal next to the slide is unreadable; restore the slide from backup") from None
    fd = os.open(path, os.O_RDWR)
    try:
        head = os.pread(fd, 16, 0)
        off, size = _header_slot(j["kind"])
        switched = head[off:off + size] == bytes.fromhex(j["new_pointer"])
        if not switched:
            os.ftruncate(fd, j["original_size"])
            os.fsync(fd)
            done = "rolled back an interrupted in-place run (the original is intact)"
        else:
            _wipe(fd, j["wipe"])
            done = "finished the wipe of an interrupted in-place run"
    finally:
        os.close(fd)
    os.unlink(jp)
    _fsync_dir(jp)
    return done


def _wipe(fd: int, ranges: list[list[int]]) -> None:
    zeros = bytes(1 << 20)
    for a, b in ranges:
        pos = a
        while pos < b:
            n = min(len(zeros), b - pos)
            os.pwrite(fd, zeros[:n], pos)
            pos += n
    os.fsync(fd)


def unreferenced_ranges(size: int, referenced: list[tuple[int, int]]) -> list[list[int]]:
    """The complement of ``referenced`` in [0, size), as [start, end) pairs."""
    if not referenced:
        return [[0, size]] if size else []
    arr = np.array(sorted(referenced), dtype=np.int64)
    out: list[list[int]] = []
    pos = 0
    for a, b in arr.tolist():
        if a > pos:
            out.append([pos, a])
        pos = max(pos, b)
    if pos < size:
        out.append([pos, size])
    return out


@dataclass
class InPlaceResult:
    report: VerifyReport
    appended: int
    wiped: int
    seconds: float
    images: list = field(default_factory=list)  # the rewritten file's kept images the residual scan reads


def _rebase(edits, appended) -> None:
    """Point ``edits.tiles`` at the appended copies of the edited tiles (checked equal to their
    pieces before the switch), so verification after the wipe reads what the file now holds."""
    from ..tiff.edits import TileEdits
    where = {id(te): k for k, te in edits.tiles.items()}
    for te, starts in appended:
        k = where.get(id(te))
        if k is None:
            continue
        moved = TileEdits(te.store)
        for t, at, n in zip(te.indices().tolist(), starts.tolist(), te.lengths().tolist()):
            moved.set_pieces(t, [(0, n)] if n else [], at)
        moved.external, moved.opaque, moved.entropy = te.external, te.opaque, te.entropy
        moved.header_tables = te.header_tables
        edits.tiles[k] = moved


def deidentify_in_place(slide, plan: Plan, edits, verify, fsync: bool = True) -> InPlaceResult:
    """Run steps 2-7 above for an opened TIFF-family slide and its plan."""
    from ..tiff.container import read_tiff
    from ..needles import Scanner, needles_for_plan
    from ..tiff.edits import as_tile_edits
    from ..tiff.writer import metadata_size, serialize_at, write_edits
    from .verify import pixel_ranges

    t0 = time.perf_counter()
    tf = slide.container
    path = tf.path
    if os.path.exists(journal_path(path)):
        raise InPlaceError("an earlier in-place run was interrupted; run again to recover it first")
    ifds, kind = slide.module.build(tf, plan, edits.tiles, edits.mcu_starts)
    if not ifds:
        raise InPlaceError("the plan keeps no image")
    bo = tf.byteorder
    origin = (tf.size + 7) // 8 * 8
    meta_len = metadata_size(ifds, kind, bo)
    # Edited tiles go right after the new metadata block, streamed from their pieces
    # (source ranges below the original end, spilled new bytes), never gathered in memory.
    pos = origin + meta_len
    appended = []
    from ..tiff.writer import _flatten
    for ifd in _flatten(ifds):
        if ifd.data is None:
            continue
        offs = np.array(ifd.data.src_offsets, dtype=np.int64)
        cnts = np.array(ifd.data.src_counts, dtype=np.int64)
        if len(ifd.data.replaced):
            te = as_tile_edits(ifd.data.replaced, path)
            idx, lens = te.indices(), te.lengths()
            starts = pos + np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(lens) else lens
            offs[idx], cnts[idx] = np.where(lens > 0, starts, 0), lens
            pos += int(lens.sum())
            appended.append((te, starts))
        ifd.data.src_offsets, ifd.data.src_counts, ifd.data.replaced = offs, cnts, {}
    end = pos
    if kind == "classic" and end >= 2**32:
        raise InPlaceError("in-place mode cannot grow a classic TIFF past 4 GB; use a copy")
    block, first = serialize_at(ifds, kind, bo, origin)
    if len(block) != meta_len:
        raise AssertionError("in-place metadata size drift")
    # Pre-verification of the new block alone, before anything visible changes.
    found = Scanner(needles_for_plan(plan).searched).scan([(0, block)])
    if found:
        raise InPlaceError(f"the new metadata would still hold {len(found)} removed value(s); nothing changed")
    off, size = _header_slot(kind)
    with open(path, "rb") as fh:
        old_pointer = os.pread(fh.fileno(), size, off)
    new_pointer = _pointer_bytes(kind, bo, first)
    _write_journal(path, {"kind": kind, "original_size": tf.size, "old_pointer": old_pointer.hex(),
                          "new_pointer": new_pointer.hex(), "wipe": []})
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes(origin - tf.size) + block, tf.size)
        os.lseek(fd, origin + meta_len, os.SEEK_SET)
        for te, _ in appended:  # pieces below tf.size: the original bytes, not yet touched
            write_edits(fd, te)
        if os.fstat(fd).st_size != end:
            raise InPlaceError("the appended tiles do not have their planned size; nothing was switched")
        # The pieces point at bytes the wipe will zero: the appended copies are checked
        # against them now, and from here on the edits point at the copies.
        for te, starts in appended:
            for t, at in zip(te.indices().tolist(), starts.tolist()):
                if not te.matches(t, fd, at):
                    raise InPlaceError("an appended tile differs from its edit; nothing was switched")
        _rebase(edits, appended)
        if fsync:
            os.fsync(fd)
        # The structure as it will be after the switch, parsed independently.
        probe = read_tiff(path, first_ifd=first)
        starts, ends = pixel_ranges(probe)
        referenced = [(0, 16 if kind == "bigtiff" else (12 if kind == "ndpi" else 8)), (origin, origin + meta_len)]
        referenced += list(zip(starts.tolist(), ends.tolist()))
        wipe = unreferenced_ranges(end, referenced)
        _write_journal(path, {"kind": kind, "original_size": tf.size, "old_pointer": old_pointer.hex(),
                              "new_pointer": new_pointer.hex(), "wipe": wipe})
        os.pwrite(fd, new_pointer, off)  # the switch
        if fsync:
            os.fsync(fd)
        _wipe(fd, wipe)
    finally:
        os.close(fd)
    report = verify(path)
    if report.ok:
        os.unlink(journal_path(path))
        _fsync_dir(path)
    return InPlaceResult(report, end - tf.size, sum(b - a for a, b in wipe), time.perf_counter() - t0)
