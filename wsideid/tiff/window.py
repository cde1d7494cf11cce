"""A window of one stored TIFF image (a level, a SubIFD level, a thumbnail), read in bounded memory.

Why: the verifier reads blanked regions back through OpenSlide, a reader independent of
ours, but OpenSlide shows neither SubIFD levels (libvips, bfconvert pyramids) nor every
thumbnail. Those images are read back here instead, by decoding only the stored tiles or
strips a window touches (tifffile's own decoders), so no kept image goes unread whatever
the slide's size.
"""

from __future__ import annotations

import numpy as np

from ..errors import WsideidError


class WindowReader:
    """``read(x, y, w, h)`` -> uint8 RGB array of that window of image ``index`` (of
    ``TiffFile.image_ifds()``), None when a segment it touches cannot be decoded."""

    def __init__(self, path: str, index: int, parsed=None):
        import tifffile

        from .pixels import tifffile_page
        self._tiff = tifffile.TiffFile(path)
        try:
            self._page = tifffile_page(self._tiff, path, index, parsed)
        except Exception:
            self._tiff.close()
            raise
        p = self._page
        if p.planarconfig == 2 and p.samplesperpixel > 1:
            self._tiff.close()
            raise WsideidError(f"image {index}: separate colour planes cannot be read in windows")
        self.height, self.width = p.imagelength, p.imagewidth
        self._seg_h = p.tilelength if p.is_tiled else min(p.rowsperstrip or p.imagelength, p.imagelength)
        self._seg_w = p.tilewidth if p.is_tiled else p.imagewidth
        self._across = -(-self.width // self._seg_w)
        self._bits = int(p.bitspersample)
        self._decode = p.decode  # made once, before any segment is read: making it moves the file position

    def __enter__(self) -> "WindowReader":
        return self

    def __exit__(self, *exc) -> None:
        self._tiff.close()

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        from .pixels import to_rgb8
        p, fh = self._page, self._tiff.filehandle
        out: np.ndarray | None = None
        for sy in range(y // self._seg_h, (y + h - 1) // self._seg_h + 1):
            for sx in range(x // self._seg_w, (x + w - 1) // self._seg_w + 1):
                i = sy * self._across + sx
                if i >= len(p.dataoffsets) or not p.databytecounts[i]:
                    return None  # a segment the window needs is not stored
                fh.seek(p.dataoffsets[i])
                data = fh.read(p.databytecounts[i])
                try:
                    seg, _, _ = self._decode(data, i, jpegtables=p.jpegtables)
                except Exception:  # noqa: BLE001 - a corrupt segment is "unreadable", judged by the caller
                    return None
                if seg is None:
                    return None
                rgb = to_rgb8(np.asarray(seg)[0], self._bits)
                if out is None:
                    out = np.zeros((h, w, 3), np.uint8)
                top, left = sy * self._seg_h, sx * self._seg_w
                y0, y1 = max(y, top), min(y + h, top + rgb.shape[0], self.height)
                x0, x1 = max(x, left), min(x + w, left + rgb.shape[1], self.width)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = rgb[y0 - top:y1 - top, x0 - left:x1 - left]
        return out
