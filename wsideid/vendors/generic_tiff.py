"""Generic tiled pyramid TIFF (what OpenSlide calls generic-tiff).

Detection: a TIFF whose first IFD is tiled and that no vendor module
claims. Tiled IFDs are pyramid levels; any other IFD is "other" and is
dropped by default, because nothing says what it shows. The profile is an
allow-list: only tags needed to decode and place the image are kept.
"""

from __future__ import annotations

from ..model import Inventory, Plan
from ..tiff.container import TiffFile
from . import tiff_base

NAME = "generic-tiff"
OPENSLIDE_VENDOR = "generic-tiff"


def claims(tf: TiffFile) -> bool:
    return bool(tf.ifds) and tf.ifds[0].has(324)


def roles(tf: TiffFile) -> list[str]:
    return ["level" if ifd.has(324) else "other" for ifd in tf.ifds]


def refine(plan: Plan) -> None:
    """No vendor rules beyond the allow-list profile."""


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles(tf), {})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {}, edited, mcu_starts), tf.kind
