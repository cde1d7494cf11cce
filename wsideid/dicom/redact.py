"""Lossless blanking of regions in DICOM WSI frames (encapsulated baseline JPEG).

Regions come in level-0 pixels (the total pixel matrix of the largest VOLUME
instance of the series) and are mapped onto every kept VOLUME and THUMBNAIL
instance by the ratio of total pixel matrix sizes. Only the frames a region
touches are edited, through the coefficient-domain editor in ``wsideid.jpeg``:
every other 8x8 block keeps its exact DCT coefficients and every other frame
its exact bytes. The writer writes the encapsulated pixel data anew from the
edited frames (the old bytes of an edited frame never reach the output);
instances without edits keep the byte-for-byte copy.

Native (uncompressed) frames are blanked by writing the fill value into the
frame bytes (``jpeg.reencode.blank_native``: lossless by construction). JPEG
2000 frames (1.2.840.10008.1.2.4.90/.91) are blanked only with
``--reencode-j2k``: each touched frame is decoded, blanked and encoded again
reversibly (5/3 wavelet), and must decode exactly to the blanked pixels
(``jpeg.reencode.reencode_j2k``); untouched frames keep their bytes.

Refused with a one-line error: other transfer syntaxes (lossless JPEG,
JPEG-LS, RLE, HTJ2K; JPEG 2000 without ``--reencode-j2k``), native pixels
other than 8-bit RGB / MONOCHROME, TILED_SPARSE frames, frames split over
several fragments, concatenations.
"""

from __future__ import annotations

import io
import os
import struct

from ..model import FrameEdit, FrameEdits, Plan
from ..regions import Box, RedactionError, scale_box
from ..tiff.edits import EditStore
from .pixels import ITEM, SEQ_END, PixelSpan, copy_range
from .source import Instance, int_attr

JPEG_BASELINE = {"1.2.840.10008.1.2.4.50": "JPEG Baseline", "1.2.840.10008.1.2.4.51": "JPEG Extended"}
ROLES = ("level", "thumbnail")
# Decoded pixels of a blanked box may differ from the fill by IDCT rounding and
# clamping (luma) and, near the box edge, by chroma upsampling from neighbours.
LUMA_TOLERANCE = 3
COLOUR_TOLERANCE = 8
CHROMA_REACH = 2  # px at the box edge where upsampled chroma may mix in neighbours


J2K_REENCODE = {"1.2.840.10008.1.2.4.90": "JPEG 2000 (lossless only)", "1.2.840.10008.1.2.4.91": "JPEG 2000"}
NATIVE_MODELS = {"RGB": "RGB", "MONOCHROME2": "GRAY", "MONOCHROME1": "GRAY_INVERTED"}


def matrix_size(inst: Instance) -> tuple[int, int]:
    """(columns, rows) of the total pixel matrix (the frame size for single-frame images)."""
    ds = inst.ds
    return (int_attr(ds, "TotalPixelMatrixColumns", int_attr(ds, "Columns")),
            int_attr(ds, "TotalPixelMatrixRows", int_attr(ds, "Rows")))


def _refuse(inst: Instance, why: str) -> RedactionError:
    return RedactionError(f"instance {inst.index} ({inst.role}): {why}; regions cannot be blanked without re-encoding")


def frame_kind(inst: Instance, reencode_j2k: bool = False) -> str:
    """How this instance's frames are blanked: "jpeg", "native" or "j2k"; refuses the rest."""
    import pydicom
    ds = inst.ds
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts in JPEG_BASELINE:
        return "jpeg"
    uid = pydicom.uid.UID(ts)
    if ts and uid.is_transfer_syntax and not uid.is_compressed and not uid.is_deflated:
        bits = int_attr(ds, "BitsAllocated", 8)
        if bits != 8 or str(ds.get("PhotometricInterpretation", "")) not in NATIVE_MODELS:
            raise _refuse(inst, f"native pixel data with {bits} bits and "
                                f"{ds.get('PhotometricInterpretation', '?')} samples (only 8-bit RGB or MONOCHROME)")
        return "native"
    if ts in J2K_REENCODE:
        if not reencode_j2k:
            raise RedactionError(f"instance {inst.index} ({inst.role}): pixel data is {J2K_REENCODE[ts]}, not baseline "
                                 "JPEG; blanking it re-encodes the touched frames (reversibly): ask for that with "
                                 "--reencode-j2k")
        if str(ds.get("PhotometricInterpretation", "")) not in ("RGB", "YBR_RCT", "MONOCHROME2"):
            # not YBR_ICT: the reversible re-encode writes RCT, which its header would then misname
            raise _refuse(inst, f"JPEG 2000 frames with {ds.get('PhotometricInterpretation', '?')} samples")
        return "j2k"
    name = uid.name if ts else "of unknown transfer syntax"
    raise _refuse(inst, f"pixel data is {name}, not baseline JPEG")


def frame_layout(inst: Instance, reencode_j2k: bool = False) -> tuple[int, int, int, int]:
    """(frame columns, frame rows, frames across, frames down), refusing what cannot be edited in place."""
    ds = inst.ds
    kind = frame_kind(inst, reencode_j2k)
    span = inst.span
    if span is None or (kind != "native") != span.encapsulated:
        raise _refuse(inst, "pixel data is not encapsulated" if kind != "native" else "native pixel data encapsulated")
    if "ConcatenationUID" in ds or int_attr(ds, "ConcatenationFrameOffsetNumber"):
        raise _refuse(inst, "the image is split over a concatenation")
    frames = int_attr(ds, "NumberOfFrames", 1)
    org = str(ds.get("DimensionOrganizationType", "") or "").upper()
    cols, rows = int_attr(ds, "Columns"), int_attr(ds, "Rows")
    tw, th = matrix_size(inst)
    across, down = -(-tw // cols) if cols else 0, -(-th // rows) if rows else 0
    if org == "TILED_SPARSE" or (org != "TILED_FULL" and frames > 1):
        raise RedactionError(f"instance {inst.index} ({inst.role}): frames are not TILED_FULL (positions per frame "
                             "are not supported for blanking)")
    if not across or not down or frames % (across * down):
        raise RedactionError(f"instance {inst.index} ({inst.role}): {frames} frame(s) do not tile a "
                             f"{tw}x{th} matrix of {cols}x{rows} frames")
    if kind == "native":
        if span.fragments[0][1] < frames * native_frame_bytes(inst):
            raise _refuse(inst, "native pixel data shorter than its frames")
    elif len(span.fragments) != frames:
        raise RedactionError(f"instance {inst.index} ({inst.role}): {len(span.fragments)} fragments for {frames} "
                             "frame(s); only one fragment per frame can be blanked")
    return cols, rows, across, down


def native_frame_bytes(inst: Instance) -> int:
    ds = inst.ds
    return (int_attr(ds, "Rows") * int_attr(ds, "Columns") * int_attr(ds, "SamplesPerPixel", 1)
            * (int_attr(ds, "BitsAllocated", 8) // 8))


def native_frame_span(inst: Instance, idx: int) -> tuple[int, int]:
    """(offset, length) of native frame ``idx`` in the file."""
    n = native_frame_bytes(inst)
    return inst.span.fragments[0][0] + idx * n, n


def _frame_span(inst: Instance, idx: int, kind: str) -> tuple[int, int]:
    return native_frame_span(inst, idx) if kind == "native" else inst.span.fragments[idx]


def _blank_one(inst: Instance, kind: str, frame: bytes, local: list[Box], full: bool, fill: str) -> bytes:
    """One frame with every box of ``local`` blanked at once, by the frame's own lossless route
    (a JPEG 2000 frame is decoded and encoded once, whatever the number of boxes on it)."""
    from ..jpeg import JpegBlankingError, blank_regions, flat_tile
    from ..jpeg.reencode import ReencodeError, blank_native, fill_levels, reencode_j2k
    ds = inst.ds
    try:
        if kind == "jpeg":
            if frame.endswith(b"\xff\xd9\0"):
                frame = frame[:-1]  # the item's padding (PS3.5 A.4), added again after the edit
            return _pad(flat_tile(frame, fill) if full else blank_regions(frame, local, fill))
        photometric = str(ds.get("PhotometricInterpretation", ""))
        if kind == "native":
            shape = (int_attr(ds, "Rows"), int_attr(ds, "Columns"), int_attr(ds, "SamplesPerPixel", 1))
            values = fill_levels(fill, NATIVE_MODELS[photometric])
            return blank_native(frame, shape, int_attr(ds, "PlanarConfiguration") == 1, local, values)
        model = "GRAY" if photometric == "MONOCHROME2" else "RGB"  # YBR_RCT/ICT: the decoder undoes the MCT
        maxval = (1 << int_attr(ds, "BitsStored", 8)) - 1
        new, _ = reencode_j2k(frame.rstrip(b"\0") if frame.endswith(b"\xff\xd9\0") else frame, local,
                              fill_levels(fill, model, maxval))
        return _pad(new)
    except (JpegBlankingError, ReencodeError) as exc:
        raise RedactionError(f"instance {inst.index} ({inst.role}): {exc}") from None


def _read(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        data = os.pread(fh.fileno(), length, offset)
    if len(data) != length:
        raise RedactionError("pixel data ended early while reading a frame to blank")
    return data


def _pad(data: bytes) -> bytes:
    return data + b"\0" if len(data) % 2 else data


class Spilled:
    """A blanked frame's new bytes, written to the instance's spill file (``tiff.edits.EditStore``,
    the store the TIFF side keeps its edited tiles in) and read back when written or verified."""

    __slots__ = ("store", "where", "offset", "size")

    def __init__(self, store: EditStore, data: bytes):
        self.store = store
        self.where, self.offset, self.size = store.literal(data)

    def read(self) -> bytes:
        return self.store.read(self.where, self.offset, self.size)


class InstanceFrames(dict):
    """The edited frames of one instance (frame index -> FrameEdit or stream-rule frame), with the
    store their new bytes are spilled to."""

    def __init__(self, store: EditStore, frames: dict | None = None):
        super().__init__(frames or {})
        self.store = store


def blank_instance(inst: Instance, boxes: list[Box], fill: str, out: InstanceFrames, reencode_j2k: bool = False,
                   reencoded: list[int] | None = None) -> int:
    """Blank ``boxes`` (pixels of this instance's total matrix) in every frame they touch, each
    frame once with all of its boxes; returns frames edited. ``reencoded`` collects the JPEG 2000
    frames encoded anew (for the audit)."""
    cols, rows, across, down = frame_layout(inst, reencode_j2k)
    kind = frame_kind(inst, reencode_j2k)
    tw, th = matrix_size(inst)
    frames_total = int_attr(inst.ds, "NumberOfFrames", 1)
    planes = frames_total // (across * down)  # focal planes x optical paths, each a full tiling
    touched: dict[int, tuple[list[Box], list[bool]]] = {}  # frame -> its local boxes, whether one covers it
    for x, y, bw, bh in boxes:
        for r in range(y // rows, min(down, -(-(y + bh) // rows))):
            for c in range(x // cols, min(across, -(-(x + bw) // cols))):
                lx, ly = x - c * cols, y - r * rows
                local = (max(0, lx), max(0, ly), min(cols, lx + bw) - max(0, lx), min(rows, ly + bh) - max(0, ly))
                full = local[:2] == (0, 0) and local[2] >= min(cols, tw - c * cols) and \
                    local[3] >= min(rows, th - r * rows)
                for p in range(planes):
                    locals_, covered = touched.setdefault((p * down + r) * across + c, ([], [False]))
                    locals_.append(local)
                    covered[0] = covered[0] or full
    for idx, (locals_, covered) in sorted(touched.items()):
        prior = out.get(idx)
        frame = prior.data if prior is not None else _read(inst.path, *_frame_span(inst, idx, kind))
        new = _blank_one(inst, kind, frame, locals_, covered[0], fill)
        out[idx] = FrameEdit(Spilled(out.store, new), (prior.boxes if prior is not None else []) + locals_, kind)
        if kind == "j2k" and reencoded is not None and idx not in reencoded:
            reencoded.append(idx)
    return len(touched)


def plan_frames(plan: Plan, regions: list[Box], fill: str, reencode_j2k: bool = False) -> FrameEdits:
    """Edits for every kept VOLUME/THUMBNAIL instance (the regions) and every overview kept with its
    label blanked (``plan.macro_boxes``); raises RedactionError before anything is written.
    The driver records them in ``plan.frame_edits``: the writer and the verifier only read them there."""
    edits = FrameEdits(fill=fill)
    data = plan.inventory.container
    by_index = {i.index: i for i in data.source.instances}
    from .frames import rule_edits

    def frames_of(inst: Instance) -> InstanceFrames:
        got = edits.frames.get(inst.index)
        return got if isinstance(got, InstanceFrames) else InstanceFrames(EditStore(inst.path), got)

    for d in plan.images:  # the stream rule first, on every kept (not regenerated) instance
        if d.action not in ("remove", "replace") and d.image.index in by_index:
            rule = rule_edits(by_index[d.image.index])
            if rule:
                edits.frames[d.image.index] = rule
    boxes: dict[int, list[Box]] = {}  # instance -> every box blanked in it (each frame edited once)
    for index, box in plan.macro_boxes:
        boxes.setdefault(index, []).append(box)
    if regions:
        kept = [by_index[d.image.index] for d in plan.images if d.action != "remove" and d.image.index in by_index]
        targets = [i for i in kept if i.role in ROLES]
        if not targets:
            raise RedactionError("the slide keeps no VOLUME or THUMBNAIL instance to blank regions in")
        for inst in targets:
            volumes = [i for i in data.source.instances if i.role == "level" and i.study_series == inst.study_series]
            if not volumes:
                raise RedactionError(f"instance {inst.index} ({inst.role}): no VOLUME instance in its series to map "
                                     "level-0 regions from")
            w0, h0 = max(matrix_size(v) for v in volumes)
            tw, th = matrix_size(inst)
            scaled = [scale_box(region, tw / w0, th / h0, tw, th) for region in regions]
            boxes.setdefault(inst.index, []).extend(b for b in scaled if b is not None)
    for index, these in boxes.items():
        frames = frames_of(by_index[index])
        blank_instance(by_index[index], these, fill, frames, reencode_j2k, edits.reencoded.setdefault(index, []))
        if frames:
            edits.frames[index] = frames
    _drop_empty(edits)
    return edits


def _drop_empty(edits: FrameEdits) -> None:
    edits.reencoded = {k: sorted(v) for k, v in edits.reencoded.items() if v}


def bot_length(inst: Instance) -> int:
    """Length of the source's Basic Offset Table item (0: empty)."""
    with open(inst.path, "rb") as fh:
        head = os.pread(fh.fileno(), 8, inst.span.start + 12)
    return struct.unpack("<I", head[4:8])[0]


def _frame_sizes(inst: Instance, frames: dict[int, FrameEdit]) -> list[int]:
    """Item value length of every frame in the output (edited: new bytes; others: source fragment)."""
    return [frames[k].size if k in frames else n
            for k, (_, n) in enumerate(inst.span.fragments)]


def _offsets(sizes: list[int]) -> list[int]:
    out, pos = [], 0
    for n in sizes:
        out.append(pos)
        pos += 8 + n
    return out


def patch_header(ds, inst: Instance, frames: dict[int, FrameEdit]) -> None:
    """Recompute the Extended Offset Table (if the header keeps one) from the output's frames.

    Always, not only for edited frames: the source's table is bytes the file chose (a name
    written there was published verbatim), and only numbers computed here are vouched for. A
    table without encapsulated frames to index, or lengths without a table, are dropped."""
    if "ExtendedOffsetTable" not in ds or inst.span is None or not inst.span.encapsulated:
        for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if kw in ds:
                del ds[kw]
        return
    sizes = _frame_sizes(inst, frames)
    ds.ExtendedOffsetTable = struct.pack(f"<{len(sizes)}Q", *_offsets(sizes))
    if "ExtendedOffsetTableLengths" in ds:
        ds.ExtendedOffsetTableLengths = struct.pack(f"<{len(sizes)}Q", *sizes)


def write_pixels(inst: Instance, frames: dict[int, FrameEdit], fh) -> None:
    """The encapsulated pixel data element with edited frames in place of the old ones."""
    if not frames:
        copy_range(inst.path, inst.span.start, inst.span.end, fh)
        return
    if not inst.span.encapsulated:
        _write_native(inst, frames, fh)
        return
    sizes = _frame_sizes(inst, frames)
    fh.write(_read(inst.path, inst.span.start, 12))  # element header: tag, OB, undefined length
    if bot_length(inst):
        offsets = _offsets(sizes)
        if offsets and offsets[-1] >= 1 << 32:
            raise RedactionError(f"instance {inst.index}: pixel data too large for a Basic Offset Table")
        fh.write(struct.pack("<HHI", *ITEM, 4 * len(offsets)) + struct.pack(f"<{len(offsets)}I", *offsets))
    else:
        fh.write(struct.pack("<HHI", *ITEM, 0))
    for k, (off, n) in enumerate(inst.span.fragments):
        if k in frames:
            data = frames[k].data
            fh.write(struct.pack("<HHI", *ITEM, len(data)) + data)
        else:
            fh.write(struct.pack("<HHI", *ITEM, n))
            copy_range(inst.path, off, off + n, fh)
    fh.write(struct.pack("<HHI", *SEQ_END, 0))


def _write_native(inst: Instance, frames: dict[int, FrameEdit], fh) -> None:
    """Native pixel data: the same element, the blanked frames' bytes in place of the old ones."""
    pos = inst.span.start
    for k in sorted(frames):
        off, n = native_frame_span(inst, k)
        if frames[k].size != n:
            raise RedactionError(f"instance {inst.index}: a blanked native frame changed size")
        copy_range(inst.path, pos, off, fh)
        fh.write(frames[k].data)
        pos = off + n
    copy_range(inst.path, pos, inst.span.end, fh)


def check_frame(data: bytes, boxes: list[Box], fill: str) -> str | None:
    """Decode an edited frame with Pillow: every blanked box is the fill colour. Returns a problem or None.

    For YCbCr streams the luma plane (not upsampled) is checked over the whole
    box; colour over the box less CHROMA_REACH px, where upsampled chroma
    cannot reach in from neighbouring blocks.
    """
    import numpy as np
    from PIL import Image

    from ..jpeg.fill import colour_model, levels, rgb_of
    from ..jpeg.markers import parse

    try:
        model = colour_model(parse(data), None)
        img = Image.open(io.BytesIO(data))
        if model == "YCbCr":
            img.draft("YCbCr", img.size)
        img.load()
        rgb = np.asarray(img.convert("L" if model == "GRAY" else "RGB")).astype(int)
        luma = np.asarray(img).astype(int)[..., 0] if img.mode == "YCbCr" else None
    except Exception as exc:  # noqa: BLE001 - any decode failure is a failed check
        return f"does not decode ({type(exc).__name__})"
    colour = rgb_of(fill)
    want = np.array(levels(colour, "GRAY") if model == "GRAY" else colour, dtype=float).round()
    y_want = round(levels(colour, "GRAY")[0])
    for x, y, w, h in boxes:
        if luma is not None:
            off = int(np.abs(luma[y:y + h, x:x + w] - y_want).max())
            if off > LUMA_TOLERANCE:
                return f"box {x},{y},{w},{h} luma is not flat (off by {off})"
        r = CHROMA_REACH if luma is not None else 0
        inner = rgb[y + r:y + h - r, x + r:x + w - r]
        if inner.size:
            off = int(np.abs(inner - want).max())
            if off > COLOUR_TOLERANCE:
                return f"box {x},{y},{w},{h} is not the fill colour (off by {off})"
    return None


def read_frames(path: str, span: PixelSpan, which) -> dict[int, bytes]:
    with open(path, "rb") as fh:
        return {k: os.pread(fh.fileno(), span.fragments[k][1], span.fragments[k][0]) for k in which}
