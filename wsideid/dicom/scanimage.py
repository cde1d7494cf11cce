"""One DICOM instance as a small 8-bit PIL image, for the detectors (OCR, barcodes).

Why a reader of its own: the detectors must see every kept image that is
not the full-resolution level, whatever its pixel format. A grayscale
16-bit or a JPEG-LS instance that the reader cannot decode would be sent to
review for nothing (a false flag), or, worse, skipped. So:

- frames are read one at a time straight from the file (the pixel data
  element is never loaded whole), each reduced by the same power of two, so
  the assembled image holds at most ``budget.MAX_SCAN_PIXELS`` pixels (a
  kept image in the residual stage: ``tiff.pixels.OUTPUT_SCAN_PIXELS``)
  whatever the instance's size (memory does not grow with the slide);
- native pixel data of any bit depth is read; more than 8 bits is windowed
  to 8 bits over the whole image (its minimum to its maximum), MONOCHROME1
  is inverted, YBR is converted to RGB;
- encapsulated frames are decoded by Pillow (JPEG, JPEG 2000) or, for what
  Pillow cannot read (JPEG-LS, lossless JPEG, RLE, HTJ2K), by imagecodecs;
- a frame that still cannot be decoded raises ``WsideidError`` with a reason
  of our own, so the instance stays flagged with that reason (never passed).
"""

from __future__ import annotations

import io
import itertools
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import WsideidError

_JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
_J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
_RLE = "1.2.840.10008.1.2.5"


def _decode_encapsulated(raw: bytes, syntax: str, rows: int, cols: int, spp: int, bits: int) -> np.ndarray:
    """One compressed frame as an array (Pillow first, then imagecodecs)."""
    if syntax not in _JPEG_LS and syntax != _RLE:
        try:
            from PIL import Image
            img = Image.open(io.BytesIO(raw))
            img.load()
            if img.mode not in ("L", "RGB", "I;16", "I", "RGBA"):
                img = img.convert("RGB" if spp == 3 else "L")
            return np.asarray(img)
        except Exception:  # noqa: BLE001 - try the next decoder
            pass
    try:
        import imagecodecs
    except ImportError:
        raise WsideidError("a compressed frame could not be decoded (imagecodecs is not installed)") from None
    try:
        if syntax in _JPEG_LS:
            return np.asarray(imagecodecs.jpegls_decode(raw))
        if syntax in _JPEG_LOSSLESS:
            return np.asarray(imagecodecs.ljpeg_decode(raw))
        if syntax in _J2K:
            return np.asarray(imagecodecs.jpeg2k_decode(raw))
        if syntax == _RLE:
            from pydicom.pixels.decoders.rle import _rle_decode_frame
            data = _rle_decode_frame(raw, rows, cols, spp, bits)
            dtype = np.uint8 if bits <= 8 else np.uint16
            planes = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder(">") if bits > 8 else dtype)
            arr = planes.reshape(spp, rows, cols)
            return np.moveaxis(arr, 0, -1) if spp > 1 else arr[0]
        return np.asarray(imagecodecs.imread(raw))
    except WsideidError:
        raise
    except Exception as exc:  # noqa: BLE001 - the reason is ours, the library's text is not quoted
        raise WsideidError(f"a compressed frame could not be decoded ({type(exc).__name__})") from None


def _native_frames(fh: BinaryIO, offset: int, frames: int, rows: int, cols: int, spp: int, bits: int,
                   signed: bool, planar: int) -> Iterator[np.ndarray]:
    if bits not in (8, 16, 32):
        raise WsideidError(f"native pixel data with {bits} bits allocated is not scanned")
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    per = rows * cols * spp * (bits // 8)
    fh.seek(offset)
    for _ in range(frames):
        data = fh.read(per)
        if len(data) < per:
            raise WsideidError("native pixel data is shorter than its frames")
        arr = np.frombuffer(data, dtype)
        if spp > 1:
            arr = arr.reshape(spp, rows, cols).transpose(1, 2, 0) if planar else arr.reshape(rows, cols, spp)
        else:
            arr = arr.reshape(rows, cols)
        yield arr


def _to_8bit(img: np.ndarray, photometric: str) -> np.ndarray:
    """The whole image windowed to 8 bits (minimum to maximum), MONOCHROME1 inverted."""
    if img.dtype != np.uint8:
        from ..tiff.pixels import to_uint8
        img = to_uint8(img, img.min().item(), img.max().item())  # in bands: no float copy of the image
    if photometric == "MONOCHROME1":
        img = 255 - img
    return img


def _pasted(tiles: Iterator[np.ndarray], size: tuple[int, int], across: int, down: int, fc: int, fr: int,
            mode: str):
    """8-bit frames pasted into one PIL image as they are decoded (TILED_FULL order).

    The image is the only full-size buffer: assembling a numpy array first, then
    handing PIL a cropped view, held the scan image three times (array, PIL's copy of
    the view, PIL's own 4-byte pixels) and took a DICOM run's main process past 100 MB."""
    from PIL import Image
    img = Image.new(mode, size)
    for i, t in enumerate(tiles):
        r, c = divmod(i, across)
        if r >= down:
            break
        if t.dtype != np.uint8 or (t.ndim == 3) != (mode == "RGB"):
            raise WsideidError("the frames of the instance differ in shape")
        img.paste(Image.fromarray(np.ascontiguousarray(t), mode), (c * fc, r * fr))  # clipped at the edges
    return img


def instance_image(path: str, index: int, limit: int | None = None):
    """The pixels of one DICOM instance (TILED_FULL frames assembled), reduced by a power of
    two (``tiff.pixels.scan_factor``, the TIFF readers' own) to at most ``limit`` pixels,
    the thread's ``scan_limit`` (kept images in the residual stage: OUTPUT_SCAN_PIXELS) and
    MAX_SCAN_PIXELS (removed images, read before they go), as an 8-bit PIL image."""
    import pydicom
    from PIL import Image
    from pydicom.encaps import generate_frames

    from ..tiff.pixels import scan_factor
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
        raw = ds.get_item(0x7FE00010, keep_deferred=True)
    except Exception as exc:  # noqa: BLE001
        raise WsideidError(f"the instance could not be read ({type(exc).__name__})") from None
    if raw is None or getattr(raw, "value_tell", None) is None:
        raise WsideidError("the instance has no pixel data to scan")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    bits = int(getattr(ds, "BitsAllocated", 8) or 8)
    photometric = str(getattr(ds, "PhotometricInterpretation", "") or "")
    tw = int(getattr(ds, "TotalPixelMatrixColumns", cols) or cols)
    th = int(getattr(ds, "TotalPixelMatrixRows", rows) or rows)
    if frames == 1:
        tw, th = cols, rows
    across = max(1, -(-tw // cols))
    down = max(1, -(-th // rows))
    f = scan_factor(tw, th, limit)
    fr, fc = -(-rows // f), -(-cols // f)
    out: np.ndarray | None = None
    syntax = str(ds.file_meta.TransferSyntaxUID)
    with open(path, "rb") as fh:
        fh.seek(raw.value_tell)
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            tiles: Iterator[np.ndarray] = (_decode_encapsulated(b, syntax, rows, cols, spp, bits)
                                           for b in generate_frames(fh, number_of_frames=frames))
        else:
            tiles = _native_frames(fh, raw.value_tell, frames, rows, cols, spp, bits,
                                   int(getattr(ds, "PixelRepresentation", 0) or 0) == 1,
                                   int(getattr(ds, "PlanarConfiguration", 0) or 0))
        tiles = (t[:rows:f, :cols:f, :3] if t.ndim == 3 else t[:rows:f, :cols:f] for t in tiles)
        first = next(tiles, None)
        if first is None:
            raise WsideidError("the instance has no frames to scan")
        tiles = itertools.chain([first], tiles)
        size = (-(-tw // f), -(-th // f))
        if first.dtype == np.uint8 and photometric != "MONOCHROME1" and first.ndim in (2, 3) \
                and (first.ndim == 2 or first.shape[2] == 3) \
                and not (photometric.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_encapsulated):
            return _pasted(tiles, size, across, down, fc, fr, "L" if first.ndim == 2 else "RGB")
        for i, t in enumerate(tiles):  # TILED_FULL order: row by row
            r, c = divmod(i, across)
            if r >= down:
                break
            if out is None:
                out = np.zeros((down * fr, across * fc) + t.shape[2:], t.dtype)
            if t.shape[2:] != out.shape[2:]:
                raise WsideidError("the frames of the instance differ in shape")
            out[r * fr:r * fr + t.shape[0], c * fc:c * fc + t.shape[1]] = t
    if out is None:
        raise WsideidError("the instance has no frames to scan")
    img = _to_8bit(out[:-(-th // f), :-(-tw // f)], photometric)
    if img.ndim == 3 and photometric.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return Image.fromarray(img, "YCbCr").convert("RGB")
    return Image.fromarray(img)
