"""Blanking in the pixel domain: uncompressed frames and reversible JPEG 2000 re-encoding.

Uncompressed pixels are blanked by writing the fill value into the boxes;
nothing else changes, so it is lossless by construction. A JPEG 2000
codestream cannot be edited in its coefficient domain the way baseline JPEG
can (the wavelet spreads every pixel over the whole tile), so a touched
codestream is decoded, blanked, and encoded again with the reversible 5/3
wavelet: the new codestream decodes exactly to the blanked pixels (checked
here by decoding it again, before it is returned), and every codestream not
touched keeps its bytes. The callers decide which codestreams are touched
and record them (``--reencode-j2k``).
"""

from __future__ import annotations

import numpy as np

from .fill import levels, rgb_of

Box = tuple[int, int, int, int]  # x, y, w, h


class ReencodeError(ValueError):
    """A frame or tile that cannot be blanked in the pixel domain, losslessly."""


def fill_levels(fill, model: str, maxval: int = 255) -> tuple[int, ...]:
    """The sample values of the fill colour per component: RGB, GRAY (MONOCHROME2),
    GRAY_INVERTED (MONOCHROME1) or YCbCr (full-range JFIF matrix)."""
    rgb = rgb_of(fill)
    if model == "RGB":
        vals = rgb
    elif model in ("GRAY", "GRAY_INVERTED"):
        g = levels(rgb, "GRAY")[0]
        vals = (255 - g,) if model == "GRAY_INVERTED" else (g,)
    elif model == "YCbCr":
        vals = levels(rgb, "YCbCr")
    else:
        raise ReencodeError(f"no fill value for colour model {model}")
    return tuple(int(round(min(255.0, max(0.0, float(v))) * maxval / 255)) for v in vals)


def blank_array(pixels: np.ndarray, boxes: list[Box], values: tuple[int, ...]) -> np.ndarray:
    """A copy of ``pixels`` (H, W) or (H, W, C) with ``boxes`` set to ``values``."""
    out = np.array(pixels, copy=True)
    h, w = out.shape[:2]
    fill = np.array(values if out.ndim == 3 else values[:1], dtype=out.dtype)
    for x, y, bw, bh in boxes:
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = fill if out.ndim == 3 else fill[0]
    return out


def blank_native(frame: bytes, shape: tuple[int, int, int], planar: bool, boxes: list[Box],
                 values: tuple[int, ...], dtype: str = "u1") -> bytes:
    """An uncompressed frame (rows, columns, samples; interleaved or planar) with boxes filled."""
    rows, cols, spp = shape
    arr = np.frombuffer(frame, dtype=np.dtype(dtype).newbyteorder("<"), count=rows * cols * spp)
    if len(arr) != rows * cols * spp:
        raise ReencodeError("frame shorter than its rows x columns x samples")
    img = arr.reshape(spp, rows, cols).transpose(1, 2, 0) if planar else arr.reshape(rows, cols, spp)
    out = blank_array(img, boxes, values)
    out = out.transpose(2, 0, 1) if planar else out
    return out.tobytes() + frame[rows * cols * spp * arr.itemsize:]


def j2k_params(codestream: bytes) -> tuple[bool, int, bool]:
    """(reversible 5/3, decomposition levels, multiple component transform) from the first COD."""
    start = codestream.find(b"\xff\x4f\xff\x51")
    if start < 0:
        raise ReencodeError("not a JPEG 2000 codestream (no SOC/SIZ)")
    pos = start + 2
    while pos + 4 <= len(codestream):
        marker = codestream[pos:pos + 2]
        length = int.from_bytes(codestream[pos + 2:pos + 4], "big")
        if marker == b"\xff\x52":  # COD: Scod, SGcod (order, layers x2, MCT), SPcod (levels, ..., transform)
            body = codestream[pos + 4:pos + 2 + length]
            if len(body) < 10:
                break
            return body[9] == 1, body[5], body[4] == 1
        if marker in (b"\xff\x90", b"\xff\x93"):
            break
        pos += 2 + length
    raise ReencodeError("JPEG 2000 codestream without a main-header COD segment")


def _full_resolution_components(codestream: bytes) -> None:
    """Refuse subsampled components (SIZ XRsiz/YRsiz != 1): re-encoding the decoded, upsampled
    planes would change the codestream's component layout."""
    pos = codestream.find(b"\xff\x51")
    if pos < 0 or len(codestream) < pos + 40:
        raise ReencodeError("JPEG 2000 codestream without a SIZ segment")
    ncomp = int.from_bytes(codestream[pos + 38:pos + 40], "big")
    for i in range(ncomp):
        sub = codestream[pos + 40 + 3 * i + 1:pos + 40 + 3 * i + 3]
        if sub != b"\x01\x01":
            raise ReencodeError("JPEG 2000 components are subsampled; such tiles are not re-encoded")


def reencode_j2k(codestream: bytes, boxes: list[Box], values: tuple[int, ...]) -> tuple[bytes, np.ndarray]:
    """Decode, blank ``boxes``, encode reversibly (5/3 wavelet, same levels and colour transform
    as the source); returns the new codestream and the blanked pixels it must decode to.

    The result is decoded again here and compared with the blanked pixels: any difference
    (an encoder that is not lossless) raises instead of returning a lossy tile.
    """
    import imagecodecs
    _full_resolution_components(codestream)
    try:
        src = imagecodecs.jpeg2k_decode(codestream)
    except Exception as exc:  # noqa: BLE001 - the decoder raises its own error types
        raise ReencodeError(f"JPEG 2000 codestream does not decode ({type(exc).__name__})") from None
    _, nlevels, mct = j2k_params(codestream)
    want = blank_array(src, boxes, values)
    bits = {np.dtype("uint8"): 8, np.dtype("uint16"): 16}.get(want.dtype)
    if bits is None:
        raise ReencodeError(f"JPEG 2000 samples of type {want.dtype} are not re-encoded")
    h, w = want.shape[:2]
    levels_ok = max(0, min(nlevels, int(np.log2(max(1, min(h, w))))))
    try:
        new = imagecodecs.jpeg2k_encode(want, level=0, reversible=True, codecformat="J2K",
                                        resolutions=levels_ok + 1, mct=mct and want.ndim == 3, numthreads=1)
    except Exception as exc:  # noqa: BLE001
        raise ReencodeError(f"JPEG 2000 re-encoding failed ({type(exc).__name__})") from None
    from .j2k import clean
    new = clean(bytes(new))  # the encoder's COM segment (its name and version) is not kept
    check = imagecodecs.jpeg2k_decode(new)
    if check.shape != want.shape or not np.array_equal(check, want):
        raise ReencodeError("the re-encoded JPEG 2000 codestream does not decode to the blanked pixels")
    return new, want
