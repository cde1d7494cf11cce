"""Views of an image (crop, scale, quarter turn) and the way back.

Readers run on transformed copies of the input; every box they report must
be mapped back to the caller's pixel grid, or the later redaction would
blank the wrong place. One small class does both directions so the mapping
is written (and tested) once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from PIL import Image, ImageFilter

from .findings import Box

_TRANSPOSE = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class View:
    """Crop ``crop`` of the source, resized by ``scale``, turned ``quarter_turns`` x 90 deg CCW."""

    crop: Box
    scale: float = 1.0
    quarter_turns: int = 0
    sharpen: bool = False  # unsharp mask after resizing: restores blurred module edges

    def render(self, image: Image.Image) -> Image.Image:
        """The transformed copy of ``image`` (the full source image)."""
        return self.finish(self.resized(image))

    def resized(self, image: Image.Image) -> Image.Image:
        """The first step of :meth:`render`: the crop of ``image`` at the view's scale (``image``
        itself for a whole view at 1x). Views that differ only in sharpening or turn share it."""
        out = image.crop(self.crop) if self.crop != (0, 0, *image.size) else image
        if self.scale != 1.0:
            w, h = self._scaled_size()
            resample = Image.Resampling.BICUBIC if self.scale > 1 else Image.Resampling.BOX
            out = out.resize((w, h), resample)
        return out

    def finish(self, out: Image.Image) -> Image.Image:
        """The rest of :meth:`render` on :meth:`resized`'s image: sharpened, then turned."""
        if self.sharpen:
            out = out.filter(ImageFilter.UnsharpMask(radius=max(1.0, 1.3 * self.scale), percent=150, threshold=2))
        k = self.quarter_turns % 4
        return out.transpose(_TRANSPOSE[k]) if k else out

    def _scaled_size(self) -> tuple[int, int]:
        w = self.crop[2] - self.crop[0]
        h = self.crop[3] - self.crop[1]
        return max(1, round(w * self.scale)), max(1, round(h * self.scale))

    def point_to_source(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of the rendered view back to source coordinates."""
        w, h = self._scaled_size()
        k = self.quarter_turns % 4
        if k == 1:
            x, y = w - y, x
        elif k == 2:
            x, y = w - x, h - y
        elif k == 3:
            x, y = y, h - x
        return self.crop[0] + x / self.scale, self.crop[1] + y / self.scale

    def box_to_source(self, points: Iterable[tuple[float, float]]) -> Box:
        """Bounding box, in source pixels, of view points (corners or a polygon)."""
        mapped = [self.point_to_source(x, y) for x, y in points]
        xs = [p[0] for p in mapped]
        ys = [p[1] for p in mapped]
        left, top = int(min(xs)), int(min(ys))
        right, bottom = int(max(xs) + 0.999), int(max(ys) + 0.999)
        sx0, sy0, sx1, sy1 = self.crop
        return (max(sx0, left), max(sy0, top), min(sx1, max(right, left + 1)), min(sy1, max(bottom, top + 1)))


class Renders:
    """``View.render`` of one source, the resized crops kept (up to ``max_pixels``) for the
    views that need them again. Exactly ``View.render``'s pixels: a view is its crop resized,
    then sharpened, then turned, so a kept resize is the same first step and the sharpening
    and the turn are applied to it as ``View.render`` applies them."""

    def __init__(self, source: Image.Image, max_pixels: int) -> None:
        self.source = source
        self.room = max_pixels
        self.kept: dict[tuple[Box, float], Image.Image] = {}
        self.made = 0  # resizes made (the tests count them)

    def render(self, view: View) -> Image.Image:
        key = (view.crop, view.scale)
        base = self.kept.get(key)
        if base is None:
            self.made += 1
            base = view.resized(self.source)
            if base is not self.source and base.width * base.height <= self.room:
                self.kept[key] = base
                self.room -= base.width * base.height
        return view.finish(base)


def full_view(image: Image.Image, scale: float = 1.0, quarter_turns: int = 0) -> View:
    """A view of the whole image."""
    return View((0, 0, *image.size), scale, quarter_turns)


def tiles(size: tuple[int, int], grid: int, overlap: float = 0.5) -> list[Box]:
    """``grid`` x ``grid`` overlapping crops covering an image of ``size``.

    Tiles are ``1/(grid - (grid-1)*overlap)`` of each side, so a code cut
    by one tile's edge lies whole in a neighbour.
    """
    w, h = size
    frac = 1.0 / (grid - (grid - 1) * overlap)
    tw, th = max(1, round(w * frac)), max(1, round(h * frac))
    xs = [round(i * (w - tw) / (grid - 1)) for i in range(grid)] if grid > 1 else [0]
    ys = [round(i * (h - th) / (grid - 1)) for i in range(grid)] if grid > 1 else [0]
    return [(x, y, x + tw, y + th) for y in ys for x in xs]
