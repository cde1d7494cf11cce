"""Generic tiled pyramid TIFF (what OpenSlide calls generic-tiff).

Detection: a TIFF whose first IFD is tiled and that no vendor module
claims. Being tiled says nothing about what an image shows (bfconvert and
raw2ometiff tile labels and macros, Leica-like files store the macro
pyramid first, BIF-like files tile the label), so levels are established
(see ``roles``); everything else is removed. The profile is an allow-list:
only tags needed to decode and place the image are kept.
"""

from __future__ import annotations

from ...model import Inventory, Plan
from ...tiff.container import TiffFile
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "generic-tiff"
TITLE = "Generic tiled TIFF"
EXTENSIONS = (".tiff", ".tif")  # an input's .tif is kept, anything else becomes .tiff
OPENSLIDE_VENDOR = "generic-tiff"
PHI_CARRIERS = (
    "An allow-list: the tags needed to decode and place the pyramid are kept; free text and identity "
    "tags are removed; any other tag, including private ones, is unknown and removed (or refuses the "
    "slide with `--strict`).",
)


def claims(tf: TiffFile) -> bool:
    return bool(tf.ifds) and tf.ifds[0].has(324)


def _veto(ifd, full: bool) -> str | None:
    nst = pyramid.subfile_type(ifd)
    if nst != (0 if full else 1):
        return (f"NewSubfileType {nst}, not 0 (the full-resolution image)" if full else
                f"NewSubfileType {nst}, not 1 (reduced resolution)")
    kw = pyramid.description_keyword(ifd.text(270))
    return f"its description says {kw!r}" if kw else None


def roles(tf: TiffFile) -> list[RoleCall]:
    """The largest tiled image is the full-resolution level (NewSubfileType 0);
    a tiled image after it is a level when it is smaller than the level above,
    has its aspect ratio and NewSubfileType 1 (what OpenSlide's generic-tiff
    driver asks too); stripped images are a label or macro when their
    description says so, a thumbnail when it also is a reduced copy of level 0,
    else unknown."""
    top = tf.ifds
    sizes = [pyramid.size_of(ifd) for ifd in top]
    tiled = [i for i, ifd in enumerate(top) if ifd.has(324)]
    levels: dict[int, str | None] = {}
    base = None
    if tiled:
        base = max(tiled, key=lambda i: (sizes[i][0] * sizes[i][1], -i))
        cands = [pyramid.Candidate(i, *sizes[i], _veto(top[i], i == base)) for i in tiled]
        levels = pyramid.establish(cands, base)
    calls: list[RoleCall] = []
    for i, ifd in enumerate(top):
        if i in levels:
            calls.append(pyramid.level_call(levels[i]))
            continue
        kw = pyramid.description_keyword(ifd.text(270))
        w, h = sizes[i]
        if kw in ("label", "macro"):
            calls.append(RoleCall(kw))
        elif (kw == "thumbnail" and base is not None and levels.get(base) is None
              and w <= sizes[base][0] and h <= sizes[base][1] and pyramid.same_aspect(*sizes[base], w, h)):
            calls.append(RoleCall("thumbnail"))
        else:
            calls.append(RoleCall(UNKNOWN, "stripped image that nothing names" if kw is None else
                                  f"stripped image whose description says {kw!r} but which is no reduced copy"))
    return pyramid.subifd_roles(tf, calls)


def refine(plan: Plan) -> None:
    """No vendor rules beyond the allow-list profile."""


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles, {})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {}, edited, mcu_starts), tf.kind
