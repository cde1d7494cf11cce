"""The JPEG / JPEG 2000 stream rule applied to DICOM frames.

Encapsulated frames are streams like TIFF tiles and can hide the same
things (COM, APPn, unused tables, bytes after EOI, J2K COM). Each frame of a
kept instance is reduced to its decoding segments (``wsideid.jpeg.structure``
and ``j2k``); a frame the rule changes is written anew by ``redact.write_pixels``,
which also recomputes the Basic Offset Table (``redact.patch_header`` the
Extended one). The cleaned bytes are not held: ``RuleFrame`` re-reads and
re-cleans its source fragment when written or verified, so memory stays
flat however many frames change.
"""

from __future__ import annotations

import os

from ..errors import MalformedFile, WsideidError
from .pixels import Fragments
from .source import Instance

JPEG_TS = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
           "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
J2K_TS = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
          "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
          "1.2.840.10008.1.2.4.203"}


def stream_kind(inst: Instance) -> str | None:
    """"jpeg", "j2k", or None for pixel data the stream rule does not cover (native, RLE...)."""
    ts = str(inst.ds.file_meta.get("TransferSyntaxUID", ""))
    return "jpeg" if ts in JPEG_TS else "j2k" if ts in J2K_TS else None


def unchecked_syntax(inst: Instance) -> str:
    """Why a kept instance whose frames no stream rule covers is refused (RLE, JPEG XL, deflated
    frames, video): its fragments would be copied unexamined, and an RLE frame has room for text
    in its header, between and after its segments (planted-PHI round 3; the TIFF family refuses
    such codecs the same way)."""
    ts = str(inst.ds.file_meta.get("TransferSyntaxUID", ""))
    return (f"instance {inst.index}: encapsulated pixel data in transfer syntax {ts}, whose frames cannot be "
            "checked for hidden data (refused; JPEG, JPEG-LS and JPEG 2000 frames are)")


def clean_frame(raw: bytes, kind: str) -> bytes:
    """One frame reduced to its decoding segments, padded to even length (PS3.5 A.4)."""
    from ..jpeg import j2k, structure
    new = j2k.clean(raw) if kind == "j2k" else structure.clean(raw).data
    return new + b"\0" if len(new) % 2 else new


class RuleFrame:
    """A frame changed by the stream rule only; its bytes are recomputed on demand."""

    boxes: list = []

    def __init__(self, path: str, offset: int, length: int, kind: str, size: int):
        self.path, self.offset, self.length, self.kind, self.size = path, offset, length, kind, size

    @property
    def data(self) -> bytes:
        with open(self.path, "rb") as fh:
            return clean_frame(os.pread(fh.fileno(), self.length, self.offset), self.kind)


def rule_edits(inst: Instance) -> dict[int, RuleFrame]:
    """Frames of ``inst`` the stream rule changes (fragment index -> frame)."""
    kind = stream_kind(inst)
    span = inst.span
    if span is not None and span.encapsulated and kind is None:
        raise MalformedFile(unchecked_syntax(inst))
    if kind is None or span is None or not span.encapsulated:
        return {}
    frames = int(inst.ds.get("NumberOfFrames", 1) or 1)
    if len(span.fragments) != frames:
        _check_split(inst, kind, frames)
        return {}
    out: dict[int, RuleFrame] = {}
    k = 0
    try:
        with open(inst.path, "rb") as fh:
            for k in _to_parse(fh.fileno(), inst.path, span.fragments, kind):
                off, n = span.fragments[k]
                raw = os.pread(fh.fileno(), n, off)
                new = clean_frame(raw, kind)
                if new != raw:
                    out[k] = RuleFrame(inst.path, off, n, kind, len(new))
    except MalformedFile as exc:
        raise MalformedFile(f"instance {inst.index} frame {k + 1}: {exc}") from None
    except OSError as exc:
        raise WsideidError(f"cannot read instance {inst.index}: {exc.strerror or type(exc).__name__}") from None
    return out


def _to_parse(fd: int, path: str, fragments: Fragments, kind: str) -> list[int]:
    """The frames the full parser must see: every JPEG 2000 frame (short headers), and the JPEG
    frames the TIFF writer's vectorised check does not pass as exactly their decoding segments
    up to a final EOI. Parsing each of a 2 GB instance's 60,000 frames in Python took most of a
    DICOM run. A frame's one byte of even-length padding (PS3.5 A.4: a zero after an
    odd-length stream, which ``clean_frame`` writes too) is left out of the fast check, and
    checked to be zero here.

    The fast check is the TIFF family's two passes (issue 14, DICOM round): ``header_scan``
    judges each frame's header (SOI..SOS) from its first bytes, once per distinct header, and
    counts its true markers; ``scan_tiles`` given those counts then passes a batch of frames by
    one count of its 0xFF bytes (``jpegsegs._counted``, the item headers and pad bytes between
    frames counted apart), walking only a batch that does not add up. A frame whose header is
    not clean goes to the parser, as the walk would have sent it. The frames' last two bytes
    (the pad test) are read in one call through ``map``, not a read a frame in a Python loop."""
    if kind != "jpeg":
        return list(range(len(fragments)))
    import itertools

    import numpy as np

    from ..tiff.jpegsegs import header_scan, pick_marks, scan_tiles
    offsets, counts = fragments.offsets, fragments.lengths
    even = np.flatnonzero((counts >= 4) & (counts % 2 == 0))
    padded = np.zeros(len(fragments), dtype=np.int64)
    for a in range(0, len(even), 1 << 15):  # bounded: a bytes object a frame while gathered
        k = even[a:a + (1 << 15)]
        tails = b"".join(map(os.pread, itertools.repeat(fd), itertools.repeat(2), (offsets[k] + counts[k] - 2).tolist()))
        if len(tails) == 2 * len(k):
            t = np.frombuffer(tails, np.uint8).reshape(-1, 2)
            padded[k] = (t[:, 0] == 0xD9) & (t[:, 1] == 0)
        else:  # a frame past the end of the file (truncated): judged one by one, as before
            padded[k] = [os.pread(fd, 2, int(o + c - 2)) == b"\xd9\0" for o, c in zip(offsets[k], counts[k])]
    lengths = counts - padded
    heads = header_scan(path, offsets, lengths, frozenset())
    rest = np.setdiff1d(np.flatnonzero(lengths > 0), heads.unsure)
    marks = pick_marks(heads.marks, np.flatnonzero(np.isin(np.flatnonzero(lengths > 0), rest)))
    flagged = rest[scan_tiles(path, offsets[rest], lengths[rest], frozenset(), marks).flagged]
    odd_or_short = np.flatnonzero((counts < 4) | (counts % 2 == 1))  # the parser pads these: they change
    return sorted(set(heads.unsure.tolist()) | set(flagged.tolist()) | set(odd_or_short.tolist()))


def _check_split(inst: Instance, kind: str, frames: int) -> None:
    """Frames split over several fragments: joined, they must already be clean.

    A frame starts at a fragment that starts with SOI (JPEG) or SOC / the JP2
    signature (JPEG 2000). Rewriting a split frame would change the fragment
    layout, so a split frame that needs the rule is refused, not rewritten.
    """
    starts = (b"\xff\xd8",) if kind == "jpeg" else (b"\xff\x4f", b"\x00\x00\x00\x0cjP")
    groups: list[list[tuple[int, int]]] = []
    with open(inst.path, "rb") as fh:
        for off, n in inst.span.fragments:
            if os.pread(fh.fileno(), 2 if kind == "jpeg" else 6, off).startswith(starts) or not groups:
                groups.append([])
            groups[-1].append((off, n))
        if len(groups) != frames:
            raise MalformedFile(f"instance {inst.index}: {len(inst.span.fragments)} fragments do not form "
                                f"{frames} frame(s); its frames cannot be checked by the stream rule")
        for k, g in enumerate(groups):
            raw = b"".join(os.pread(fh.fileno(), n, off) for off, n in g)
            if clean_frame(raw, kind).rstrip(b"\0") != raw.rstrip(b"\0"):
                raise MalformedFile(f"instance {inst.index} frame {k + 1}: split over {len(g)} fragments and holds "
                                    "more than its decoding segments; such frames are not rewritten")


SAMPLE = 16  # frames per instance re-parsed in sample mode (edited ones are always re-parsed)
DECODE_SAMPLE = 8  # rule-edited frames per instance whose decoding is compared with the source's


def check_frames(written, outs: list[Instance], edits_of, full: bool) -> tuple[bool, str]:
    """Re-parse the output's frames under the stream rule and compare decodings.

    Every frame (full) or a sample plus every edited one: nothing but its
    decoding segments, nothing after its end marker. A sample of frames the
    rule changed (all with full) decodes exactly as the source frame (DCT
    coefficients for baseline JPEG, pixels from imagecodecs otherwise). A
    Basic Offset Table, when written, points at the frames.
    """
    import struct

    from ..jpeg.compare import same_decoding
    from .pixels import ITEM
    bad, problems, parsed, compared = 0, [], 0, 0
    for (inst, path, _), out in zip(written, outs):
        kind = stream_kind(out) if out.span is not None else None
        if kind is None and out.span is not None and out.span.encapsulated:
            bad += 1
            problems.append(unchecked_syntax(out))
            continue
        if kind is None or not out.span.encapsulated:
            continue
        edited = edits_of(inst)
        n = len(out.span.fragments)
        pick = range(n) if full or n <= SAMPLE else sorted({round(i * (n - 1) / (SAMPLE - 1)) for i in range(SAMPLE)}
                                                          | set(edited))
        with open(path, "rb") as fo, open(inst.path, "rb") as fs:
            for k in pick:
                off, size = out.span.fragments[k]
                raw = os.pread(fo.fileno(), size, off)
                parsed += 1
                try:
                    ok = clean_frame(raw, kind) == raw
                except WsideidError:
                    ok = False
                if not ok:
                    bad += 1
                    problems.append(f"instance {inst.index} frame {k + 1} holds more than its decoding segments")
            rule = [k for k, e in sorted(edited.items()) if isinstance(e, RuleFrame)]
            for k in rule[:None if full else DECODE_SAMPLE]:
                off, size = out.span.fragments[k]
                before = os.pread(fs.fileno(), edited[k].length, edited[k].offset)
                got = os.pread(fo.fileno(), size, off)
                if got.endswith(b"\xff\xd9\0"):
                    got = got[:-1]  # the item's padding (PS3.5 A.4), not part of the stream
                why = same_decoding(before, got, kind=kind)
                compared += 1
                if why:
                    problems.append(f"instance {inst.index} frame {k + 1}: {why}")
            bot = os.pread(fo.fileno(), 8, out.span.start + 12)
            blen = struct.unpack("<HHI", bot)[2] if len(bot) == 8 and struct.unpack("<HH", bot[:4]) == ITEM else 0
            if blen:
                table = struct.unpack(f"<{blen // 4}I", os.pread(fo.fileno(), blen, out.span.start + 20))
                first = out.span.fragments[0][0] - 8 if out.span.fragments else 0
                if list(table) != [o - 8 - first for o, _ in out.span.fragments]:
                    problems.append(f"instance {inst.index}: Basic Offset Table does not match the frames")
    detail = "; ".join(problems[:3]) if problems else (
        f"{parsed} frame(s) re-parsed, nothing but decoding segments; {compared} rule-edited frame(s) decode "
        "exactly as their source")
    return not problems, detail
