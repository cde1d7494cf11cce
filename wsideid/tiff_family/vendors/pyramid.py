"""What makes an image a pyramid level: established positively, never guessed.

A level is copied whole and, being tissue, is never shown to a person, so
taking a label or a macro for a level publishes it. The rule every TIFF
driver applies (each with its own markers):

- the full-resolution image is the one the driver names (Aperio: IFD 0;
  NDPI: the highest magnification; generic TIFF: the largest tiled image),
  and its own markers must agree;
- any other level is smaller than the level above it (in file order, per
  chain), has the same aspect ratio as the full-resolution image within
  rounding, and the vendor's markers agree (NewSubfileType, no
  label/macro/thumbnail word in its description, NDPI magnification in
  proportion to its size);
- a SubIFD image is a level only below a level, with NewSubfileType 1 and
  the same size rule.

Whatever fails is "unknown": removed and recorded with the reason (or the
slide is refused with --strict), scanned by the detectors and shown on the
QC page. The reason is what the audit and ``inspect`` show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...tiff.container import Ifd, TiffFile

UNKNOWN = "unknown"
LEVEL = "level"

# Words a vendor (or a converter) writes into the description of a non-tissue image.
_KEYWORDS = re.compile(r"\b(label|macro|thumbnail|overview|barcode)\b", re.IGNORECASE)


class RoleCall(str):
    """An image's role (the string itself, so role lists still compare with
    ``"level"``) and, for anything not established, why."""

    reason: str

    def __new__(cls, role: str, reason: str = "") -> "RoleCall":
        obj = super().__new__(cls, role)
        obj.reason = reason
        return obj

    @property
    def role(self) -> str:
        return str(self)


def level_call(veto: str | None) -> RoleCall:
    """A level candidate's role: a level when nothing was said against it, else unknown with the reason."""
    return RoleCall(LEVEL) if veto is None else RoleCall(UNKNOWN, veto)


@dataclass
class Candidate:
    """An image offered as a pyramid level: its index, size, and what its markers say against it."""

    index: int
    width: int
    height: int
    veto: str | None = None  # the vendor's markers deny it (None: they agree)


def description_keyword(text: str | None) -> str | None:
    """A label/macro/thumbnail word in a plain-text description.

    XML and JSON descriptions (OME-XML, converter metadata) name every image
    of the file, so their words say nothing about this one.
    """
    t = (text or "").lstrip()
    if not t or t.startswith(("<", "{")):
        return None
    m = _KEYWORDS.search(t)
    return m.group(1).lower() if m else None


def _close(got: float, want: float, per_px: float) -> bool:
    # one pixel of rounding on each side (scaled by the other side's ratio), plus 1 %
    return abs(got - want) <= 1 + per_px + 0.01 * want


def same_aspect(w0: int, h0: int, w: int, h: int) -> bool:
    """``w x h`` is ``w0 x h0`` scaled by one factor, within rounding."""
    if min(w0, h0, w, h) <= 0:
        return False
    return _close(h, h0 * w / w0, h0 / w0) and _close(w, w0 * h / h0, w0 / h0)


def smaller(w: int, h: int, pw: int, ph: int) -> bool:
    return w <= pw and h <= ph and (w, h) != (pw, ph)


def establish(cands: list[Candidate], base: int) -> dict[int, str | None]:
    """For each candidate index: None when it is a level, else the reason it is not.

    ``base`` is the full-resolution candidate's index. Candidates come in
    file order; one stored before the full-resolution image is not a level
    (a Leica-like macro pyramid first, a BIF-like label first).
    """
    out: dict[int, str | None] = {}
    by_index = {c.index: c for c in cands}
    b = by_index[base]
    if b.veto:
        return {c.index: (b.veto if c.index == base else
                          f"the full-resolution image (image {base}) is not established") for c in cands}
    seen_base = False
    pw, ph = b.width, b.height
    for c in cands:
        if c.index == base:
            seen_base = True
            out[c.index] = None
            continue
        if not seen_base:
            out[c.index] = f"stored before the full-resolution image (image {base})"
        elif c.veto:
            out[c.index] = c.veto
        elif not smaller(c.width, c.height, pw, ph):
            out[c.index] = f"{c.width}x{c.height} is not smaller than the level above it ({pw}x{ph})"
        elif not same_aspect(b.width, b.height, c.width, c.height):
            out[c.index] = f"{c.width}x{c.height} does not have the aspect ratio of {b.width}x{b.height}"
        else:
            out[c.index] = None
            pw, ph = c.width, c.height
    return out


def size_of(ifd: Ifd) -> tuple[int, int]:
    from .tiff_base import number
    return int(number(ifd, 256, 0) or 0), int(number(ifd, 257, 0) or 0)


def subfile_type(ifd: Ifd) -> int:
    from .tiff_base import number
    return int(number(ifd, 254, 0) or 0)


def subifd_roles(tf: TiffFile, calls: list[RoleCall]) -> list[RoleCall]:
    """Roles of the images stored as SubIFDs (after the top-level ones in ``calls``).

    A SubIFD image is a level only when its parent is a level, its
    NewSubfileType is 1 (reduced resolution), it has no label/macro word,
    and it is smaller than the previous image of its list (the parent for
    the first) with the parent's aspect ratio.
    """
    imgs = tf.image_ifds()
    parents = tf.image_parents()
    out = list(calls)
    for i in range(len(calls), len(imgs)):
        out.append(RoleCall(UNKNOWN, "not checked"))
    prev: dict[int, tuple[int, int]] = {}
    for i in range(len(calls), len(imgs)):
        p = parents[i]
        ifd = imgs[i]
        w, h = size_of(ifd)
        if p is None or out[p].role != LEVEL:
            out[i] = RoleCall(UNKNOWN, f"SubIFD of image {p}, which is not a pyramid level")
            continue
        pw, ph = prev.get(p, size_of(imgs[p]))
        bw, bh = size_of(imgs[p])
        kw = description_keyword(ifd.text(270))
        if subfile_type(ifd) != 1:
            out[i] = RoleCall(UNKNOWN, f"SubIFD with NewSubfileType {subfile_type(ifd)}, not 1 (reduced resolution)")
        elif kw:
            out[i] = RoleCall(UNKNOWN, f"its description says {kw!r}")
        elif not ifd.has(324) and imgs[p].has(324):
            out[i] = RoleCall(UNKNOWN, "not tiled, unlike the level it belongs to")
        elif not smaller(w, h, pw, ph):
            out[i] = RoleCall(UNKNOWN, f"{w}x{h} is not smaller than the level above it ({pw}x{ph})")
        elif not same_aspect(bw, bh, w, h):
            out[i] = RoleCall(UNKNOWN, f"{w}x{h} does not have the aspect ratio of {bw}x{bh}")
        else:
            out[i] = RoleCall(LEVEL)
            prev[p] = (w, h)
    return out
