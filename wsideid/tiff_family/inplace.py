"""In-place de-identification, crash-safe, at a cost set by the metadata.

For labs that cannot afford a copy of every slide. Only on explicit request
(``--in-place``). The slide's image data never moves; the steps are:

1. plan as usual; build the new IFDs so they point at the tiles where they
   already are (edited tiles, e.g. stripped of APPn segments, go at the end);
2. write a journal next to the slide (original size and header) and fsync;
3. append the new metadata block (and edited tiles) at the end; fsync;
4. pre-verify the new block: it parses, the residual scan finds no removed
   value in it;
5. copy every byte the new structure does not reference (old IFDs and tag
   values, the label and macro, old versions of edited tiles) into an undo
   file beside the journal, fsync it, and record its digest in the journal;
6. switch the header's first-IFD pointer to the new block: one write of 4 or
   8 bytes inside the first sector, atomic; fsync;
7. zero those bytes in the slide; fsync;
8. verify the whole file as a copy would be verified; only then mark the
   journal verified, remove the undo file and the journal.

Any failure up to step 8 (a failed check, an exception, a signal) puts the
original back: the undo file's bytes where they were, the old pointer, the
original size; the slide is then byte for byte the input (its hash is kept
by tests). A crash (SIGKILL, power) leaves the journal: before step 6 the
file is the original plus bytes past its end; after it, a slide not yet
verified. The next run, or any ``--in-place`` run on it, restores the
original from the journal and the undo file before it does anything else;
a copy-mode run refuses the slide while the journal is there. So the input
is never left changed unless the result was verified clean. The undo file
holds what the original held (the label among it) and lives only as long as
the journal.
"""

from __future__ import annotations

import hashlib
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


def undo_path(path: str) -> str:
    """The undo file: the bytes the wipe zeroes, kept until the result is verified."""
    return journal_path(path)[:-len(".json")] + ".undo"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def recover(path: str) -> str | None:
    """Undo an interrupted in-place run (or clean up after one that was verified); returns what
    was done, or None when there was nothing to do."""
    jp = journal_path(path)
    if not os.path.exists(jp):
        _remove(undo_path(path))  # an undo file without its journal: the run was verified or never switched
        return None
    try:
        with open(jp) as fh:
            j = json.load(fh)
    except (OSError, ValueError):
        raise InPlaceError("an in-place journal next to the slide is unreadable; restore the slide from backup") from None
    if j.get("verified"):
        done = "cleaned up after a verified in-place run"
    else:
        fd = os.open(path, os.O_RDWR)
        try:
            if "undo_sha256" not in j and _switched(fd, j):
                # a journal of an earlier version, which kept no undo file: finish its wipe
                _wipe(fd, j["wipe"])
                done = "finished the wipe of an interrupted in-place run"
            else:
                _roll_back(fd, path, j)
                done = "rolled back an interrupted in-place run (the original is intact)"
        finally:
            os.close(fd)
    _remove(undo_path(path))
    os.unlink(jp)
    _fsync_dir(jp)
    return done


def _switched(fd: int, j: dict) -> bool:
    off, size = _header_slot(j["kind"])
    return os.pread(fd, size, off) == bytes.fromhex(j["new_pointer"])


def _roll_back(fd: int, path: str, j: dict) -> None:
    """Put the original back: the undo file's bytes at their places (when the switch was made),
    the old first-IFD pointer, the original size. Idempotent: a crash inside it is undone by
    running it again from the journal."""
    if j.get("undo_sha256") and _switched(fd, j):
        _restore_undo(fd, undo_path(path), j)
    off, _ = _header_slot(j["kind"])
    os.pwrite(fd, bytes.fromhex(j["old_pointer"]), off)
    os.ftruncate(fd, j["original_size"])
    os.fsync(fd)


def _undo_ranges(ranges: list[list[int]], size: int) -> list[tuple[int, int]]:
    """The parts of the wipe below the original end (the rest is cut off by the truncation)."""
    return [(a, min(b, size)) for a, b in ranges if a < size]


def _save_undo(fd: int, path: str, ranges: list[tuple[int, int]]) -> str:
    """Copy ``ranges`` of the slide into its undo file, fsync'd; returns the copy's SHA-256."""
    digest = hashlib.sha256()
    up = undo_path(path)
    with open(up, "wb") as out:
        for a, b in ranges:
            pos = a
            while pos < b:
                chunk = os.pread(fd, min(_CHUNK, b - pos), pos)
                if not chunk:
                    raise InPlaceError("the slide is shorter than its own structure; nothing was switched")
                out.write(chunk)
                digest.update(chunk)
                pos += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    _fsync_dir(up)
    return digest.hexdigest()


def _restore_undo(fd: int, up: str, j: dict) -> None:
    ranges = _undo_ranges(j["wipe"], j["original_size"])
    want = sum(b - a for a, b in ranges)
    digest = hashlib.sha256()
    try:
        with open(up, "rb") as fh:
            blob_size = os.fstat(fh.fileno()).st_size
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError:
        blob_size = -1
    if blob_size != want or digest.hexdigest() != j["undo_sha256"]:
        raise InPlaceError("the undo file of an interrupted in-place run is missing or damaged; "
                           "restore the slide from backup")
    with open(up, "rb") as fh:
        for a, b in ranges:
            pos = a
            while pos < b:
                chunk = fh.read(min(_CHUNK, b - pos))
                os.pwrite(fd, chunk, pos)
                pos += len(chunk)
    os.fsync(fd)


_CHUNK = 1 << 20


def _wipe(fd: int, ranges: list[list[int]]) -> None:
    zeros = bytes(_CHUNK)
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
    restored: bool = False  # verification failed and the original was put back, byte for byte


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
    """Run steps 2-8 above for an opened TIFF-family slide and its plan; on a failed verification
    the slide is the original again (``restored``), on an exception too (then it propagates)."""
    from ..needles import Scanner, needles_for_plan
    from ..tiff.edits import as_tile_edits
    from ..tiff.writer import metadata_size, serialize_at

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
    journal = {"kind": kind, "original_size": tf.size, "old_pointer": old_pointer.hex(),
               "new_pointer": new_pointer.hex(), "wipe": []}
    _write_journal(path, journal)
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            wipe = _rewrite(fd, path, tf.size, journal, block, origin, meta_len, appended, end, first, fsync)
            _rebase(edits, appended)
            report = verify(path)
        except BaseException:
            _undo_now(fd, path, journal)
            raise
        if report.ok:
            _commit(path, journal)
        else:
            _undo_now(fd, path, journal)
    finally:
        os.close(fd)
    return InPlaceResult(report, end - tf.size, sum(b - a for a, b in wipe), time.perf_counter() - t0,
                         restored=not report.ok)


def _rewrite(fd: int, path: str, size: int, journal: dict, block: bytes, origin: int, meta_len: int,
             appended: list, end: int, first: int, fsync: bool) -> list[list[int]]:
    """Steps 3-7: append, keep the undo copy, switch, wipe; returns the wiped ranges."""
    from ..tiff.container import read_tiff
    from ..tiff.writer import write_edits
    from .verify import pixel_ranges

    kind = journal["kind"]
    os.pwrite(fd, bytes(origin - size) + block, size)
    os.lseek(fd, origin + meta_len, os.SEEK_SET)
    for te, _ in appended:  # pieces below the original end: the original bytes, not yet touched
        write_edits(fd, te)
    if os.fstat(fd).st_size != end:
        raise InPlaceError("the appended tiles do not have their planned size; nothing was switched")
    # The pieces point at bytes the wipe will zero: the appended copies are checked
    # against them now, and from here on the edits point at the copies.
    for te, starts in appended:
        for t, at in zip(te.indices().tolist(), starts.tolist()):
            if not te.matches(t, fd, at):
                raise InPlaceError("an appended tile differs from its edit; nothing was switched")
    if fsync:
        os.fsync(fd)
    # The structure as it will be after the switch, parsed independently.
    probe = read_tiff(path, first_ifd=first)
    starts, ends = pixel_ranges(probe)
    referenced = [(0, 16 if kind == "bigtiff" else (12 if kind == "ndpi" else 8)), (origin, origin + meta_len)]
    referenced += list(zip(starts.tolist(), ends.tolist()))
    wipe = unreferenced_ranges(end, referenced)
    # What the wipe zeroes, saved before the switch: a failed verification puts it back.
    digest = _save_undo(fd, path, _undo_ranges(wipe, size))
    journal.update(wipe=wipe, undo_sha256=digest)
    _write_journal(path, journal)
    off, _ = _header_slot(kind)
    os.pwrite(fd, bytes.fromhex(journal["new_pointer"]), off)  # the switch
    if fsync:
        os.fsync(fd)
    _wipe(fd, wipe)
    return wipe


def _commit(path: str, journal: dict) -> None:
    """The result verified: the journal says so first (a crash from here on keeps the result),
    then the undo copy and the journal go."""
    journal["verified"] = True
    _write_journal(path, journal)
    _remove(undo_path(path))
    os.unlink(journal_path(path))
    _fsync_dir(path)


def _undo_now(fd: int, path: str, journal: dict) -> None:
    """Put the original back after a failure in this run; when that fails too, the journal and
    undo file stay for the next run, and the error says so."""
    try:
        _roll_back(fd, path, journal)
        _remove(undo_path(path))
        os.unlink(journal_path(path))
        _fsync_dir(path)
    except BaseException as exc:
        raise InPlaceError(f"the in-place run failed and putting the original back failed too "
                           f"({type(exc).__name__}); its journal is kept: run again with --in-place "
                           "to restore the slide") from None
