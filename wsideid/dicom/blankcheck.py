"""Verification of frames blanked in the pixel domain (native frames, re-encoded JPEG 2000).

Independent of the writer: the source frame is decoded (native bytes read as
samples; JPEG 2000 by OpenJPEG through imagecodecs), the boxes the plan
recorded are filled with the fill value, and the output frame, read back from
the written file and decoded the same way, must equal that exactly: the
blanked area is flat and every other pixel of the frame is the source's. (The
frames not touched are compared byte for byte by ``pixels-identical``.)
"""

from __future__ import annotations

import os

import numpy as np

from ..model import FrameEdits
from .redact import NATIVE_MODELS, native_frame_bytes
from .source import Instance, int_attr


def _decode(raw: bytes, kind: str, inst: Instance) -> np.ndarray:
    ds = inst.ds
    if kind == "native":
        rows, cols, spp = int_attr(ds, "Rows"), int_attr(ds, "Columns"), int_attr(ds, "SamplesPerPixel", 1)
        arr = np.frombuffer(raw, np.uint8, count=rows * cols * spp)
        return arr.reshape(spp, rows, cols).transpose(1, 2, 0) if int_attr(ds, "PlanarConfiguration") == 1 else \
            arr.reshape(rows, cols, spp)
    import imagecodecs
    return np.asarray(imagecodecs.jpeg2k_decode(raw))


def _values(kind: str, inst: Instance, fill: str) -> tuple[int, ...]:
    from ..jpeg.reencode import fill_levels
    photometric = str(inst.ds.get("PhotometricInterpretation", ""))
    if kind == "native":
        return fill_levels(fill, NATIVE_MODELS[photometric])
    return fill_levels(fill, "GRAY" if photometric == "MONOCHROME2" else "RGB",
                       (1 << int_attr(inst.ds, "BitsStored", 8)) - 1)


def _frame(fd: int, inst: Instance, span, k: int, kind: str) -> bytes:
    if kind == "native":
        n = native_frame_bytes(inst)
        return os.pread(fd, n, span.fragments[0][0] + k * n)
    off, n = span.fragments[k]
    return os.pread(fd, n, off)


def check_pixel_domain_blanking(edits: FrameEdits | None, written, outs: list[Instance]) -> tuple[bool, str]:
    """Every native / re-encoded JPEG 2000 frame with blanked boxes decodes to the source frame
    with exactly those boxes set to the fill value. (ok, detail)."""
    from ..jpeg.reencode import blank_array
    if edits is None:
        return True, "no frame blanked"
    problems, native, j2k = [], 0, 0
    for (inst, path, _), out in zip(written, outs):
        frames = {k: e for k, e in edits.of(inst.index).items() if e.boxes and getattr(e, "kind", "jpeg") != "jpeg"}
        if not frames or out.span is None:
            continue
        with open(inst.path, "rb") as fs, open(path, "rb") as fo:
            for k, e in sorted(frames.items()):
                try:
                    want = blank_array(_decode(_frame(fs.fileno(), inst, inst.span, k, e.kind), e.kind, inst), e.boxes,
                                       _values(e.kind, inst, edits.fill))
                    got = _decode(_frame(fo.fileno(), out, out.span, k, e.kind), e.kind, out)
                except Exception as exc:  # noqa: BLE001 - any decode failure is a failed check
                    problems.append(f"instance {inst.index} frame {k + 1} does not decode ({type(exc).__name__})")
                    continue
                if got.shape != want.shape or not np.array_equal(got, want):
                    problems.append(f"instance {inst.index} frame {k + 1}: not the source with the boxes filled")
                if e.kind == "native":
                    native += 1
                else:
                    j2k += 1
    if problems:
        return False, "; ".join(problems[:3])
    return True, (f"{native} native and {j2k} re-encoded JPEG 2000 frame(s) decode exactly to the source with the "
                  "blanked boxes filled")


COEFF_SAMPLE = 16  # JPEG frames per run whose coefficients outside the boxes are compared (all with --verify full)


def check_jpeg_outside(edits: FrameEdits | None, written, full: bool) -> tuple[bool, str]:
    """Every (sampled) JPEG frame blanked in the coefficient domain keeps, outside its MCU-grown
    boxes, exactly the source frame's quantised DCT coefficients (the project's own decoder,
    independent of the editor's bookkeeping). (ok, detail)."""
    from ..jpeg.decode import coefficients
    from ..jpeg.markers import parse
    if edits is None:
        return True, "no frame blanked"
    problems, n = [], 0
    for inst, path, _ in written:
        frames = {k: e for k, e in edits.of(inst.index).items() if e.boxes and getattr(e, "kind", "jpeg") == "jpeg"}
        if not frames:
            continue
        out = _output_span(path, inst.index)
        with open(inst.path, "rb") as fs, open(path, "rb") as fo:
            for k, e in sorted(frames.items())[:None if full else COEFF_SAMPLE]:
                src = _strip_pad(os.pread(fs.fileno(), inst.span.fragments[k][1], inst.span.fragments[k][0]))
                got = _strip_pad(os.pread(fo.fileno(), out.fragments[k][1], out.fragments[k][0]))
                n += 1
                try:
                    hdr = parse(src)
                    a, b = coefficients(src), coefficients(got)
                except Exception as exc:  # noqa: BLE001 - any decode failure is a failed check
                    problems.append(f"instance {inst.index} frame {k + 1} does not decode ({type(exc).__name__})")
                    continue
                hmax = max(c.h for c in hdr.components)
                vmax = max(c.v for c in hdr.components)
                for c, ca, cb in zip(hdr.components, a, b):
                    keep = np.ones(ca.shape[:2], bool)
                    for x, y, w, h in e.boxes:
                        mx0, my0 = x // (8 * hmax), y // (8 * vmax)
                        mx1, my1 = -(-(x + w) // (8 * hmax)), -(-(y + h) // (8 * vmax))
                        keep[my0 * c.v:my1 * c.v, mx0 * c.h:mx1 * c.h] = False
                    if ca.shape != cb.shape or not np.array_equal(ca[keep], cb[keep]):
                        problems.append(f"instance {inst.index} frame {k + 1}: coefficients outside the blanked "
                                        "area differ from the source's")
                        break
    if problems:
        return False, "; ".join(problems[:3])
    return True, f"{n} blanked JPEG frame(s) keep the source's DCT coefficients outside the MCU-grown boxes"


def _strip_pad(data: bytes) -> bytes:
    return data[:-1] if data.endswith(b"\xff\xd9\0") else data


def _output_span(path: str, index: int):
    from .source import read_instance
    return read_instance(path, index).span


def _covers(boxes: list, local: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    """The recorded boxes of a frame, together, cover ``local`` (frame pixels)."""
    cols, rows = size
    mask = np.zeros((rows, cols), bool)
    for x, y, w, h in boxes:
        mask[max(0, y):y + h, max(0, x):x + w] = True
    x, y, w, h = local
    return bool(mask[y:y + h, x:x + w].all())


def check_region_coverage(plan, written, outs: list[Instance]) -> tuple[bool, str]:
    """Every frame a region (or a kept overview's label box) falls on, by the output's own
    geometry, was blanked over the region's part in it. Why: the other parts read back the
    frames the editor says it blanked; an editor that left out a level, a focal plane, an
    optical path or an edge frame would pass them. The geometry is the output header's
    (Columns x Rows frames tiling the total pixel matrix once per plane, TILED_FULL; the
    editor refuses any other), regions scaled from the largest VOLUME of the series."""
    import math

    from ..regions import scale_box
    from .redact import ROLES, matrix_size
    edits = plan.frame_edits
    pairs = [(inst, out) for (inst, _, _), out in zip(written, outs)]
    base: dict[tuple[str, str], tuple[int, int]] = {}
    for inst, out in pairs:
        if inst.role == "level":
            base[inst.study_series] = max(base.get(inst.study_series, (0, 0)), matrix_size(out))
    labels = dict(plan.macro_boxes)
    problems, frames = [], 0
    for inst, out in pairs:
        boxes = [labels[inst.index]] if inst.index in labels else []
        if plan.regions and inst.role in ROLES:
            if inst.study_series not in base:
                problems.append(f"instance {inst.index}: no VOLUME in its series to map the regions from")
                continue
            (w0, h0), (tw, th) = base[inst.study_series], matrix_size(out)
            boxes += [b for b in (scale_box(r, tw / w0, th / h0, tw, th) for r in plan.regions) if b is not None]
        if not boxes:
            continue
        ds = out.ds
        cols, rows = int_attr(ds, "Columns"), int_attr(ds, "Rows")
        tw, th = matrix_size(out)
        across, down = math.ceil(tw / max(1, cols)), math.ceil(th / max(1, rows))
        n = int_attr(ds, "NumberOfFrames", 1)
        org = str(ds.get("DimensionOrganizationType", ""))
        if cols < 1 or rows < 1 or n % (across * down) or (n > 1 and org != "TILED_FULL"):
            problems.append(f"instance {inst.index}: frames that do not tile its matrix ({org or 'no organisation'})")
            continue
        recorded = edits.of(inst.index) if edits is not None else {}
        for x, y, bw, bh in boxes:
            for r in range(y // rows, min(down, -(-(y + bh) // rows))):
                for c in range(x // cols, min(across, -(-(x + bw) // cols))):
                    lx, ly = x - c * cols, y - r * rows
                    local = (max(0, lx), max(0, ly), min(cols, lx + bw) - max(0, lx), min(rows, ly + bh) - max(0, ly))
                    for p in range(n // (across * down)):
                        k = (p * down + r) * across + c
                        frames += 1
                        e = recorded.get(k)
                        if e is None or not _covers(e.boxes, local, (cols, rows)):
                            problems.append(f"instance {inst.index} frame {k + 1}")
    if problems:
        return False, f"{len(problems)} frame(s) under a region not blanked there: " + ", ".join(problems[:3])
    return True, f"{frames} frame(s) under the regions, every one blanked there"
