"""``--macro blank-label`` on DICOM: where the label sits on an OVERVIEW, decided at plan time.

The same evidence as the TIFF side (``detect.label_location.locate_label``):
a vendor's default place for the label on its overview photo, grown to the
barcodes the detector decodes on it. DICOM has no label box of its own, so
the vendor comes from the Manufacturer attribute; an overview whose vendor is
not known, whose label cannot be placed, or whose frames cannot be blanked
losslessly is removed instead (fail closed), and the decision's rule says
why. The boxes kept go to ``plan.macro_boxes``; ``redact.plan_frames`` turns
them into frame edits like the regions.
"""

from __future__ import annotations

from ..enums import ImageAction
from ..errors import WsideidError
from ..regions import Box, RedactionError
from .source import Instance, int_attr

# Manufacturer, normalised (``_normalised``) -> the vendor ``locate_label`` has a default place for.
# Whole names only: a word inside another maker's name ("Aperiodic Imaging", "Leica Microsystems",
# whose scanners lay out their overviews differently) is not the vendor.
MANUFACTURERS = {
    "aperio": "aperio", "aperio technologies": "aperio", "aperio technologies inc": "aperio",
    "leica biosystems": "aperio", "leica biosystems imaging": "aperio", "leica biosystems imaging inc": "aperio",
    "hamamatsu": "hamamatsu", "hamamatsu photonics": "hamamatsu", "hamamatsu photonics kk": "hamamatsu",
}
# A slide overview photographs the whole glass slide (75 x 25 mm): landscape, about 3:1 (the real
# macros the vendor defaults were checked on: Aperio 1280 x 431, Hamamatsu 1188 x 408). Another
# shape is not the picture the vendor's label place was measured on.
ASPECT_RANGE = (2.4, 3.6)  # width / height
MIN_HEIGHT = 64  # px: smaller is an icon, not an overview whose label could be placed
MAX_WIDTH = 20_000  # px: larger is a scan of the slide, not its overview photo


def _normalised(text: str) -> str:
    """Lower case, "." and "," dropped, other punctuation and runs of spaces one space."""
    import re
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower().replace(".", "").replace(",", "")).split())


def overview_vendor(inst: Instance) -> str | None:
    """The vendor whose overview layout applies, from Manufacturer (the whole name); None when not known."""
    return MANUFACTURERS.get(_normalised(str(inst.ds.get("Manufacturer", "") or "")))


def shape_problem(size: tuple[int, int]) -> str | None:
    """Why an image of ``size`` (w, h) is not shaped like a slide overview, or None."""
    w, h = size
    if h < MIN_HEIGHT or w > MAX_WIDTH or not ASPECT_RANGE[0] <= w / h <= ASPECT_RANGE[1]:
        return (f"{w}x{h} px is not shaped like a slide overview (landscape, width {ASPECT_RANGE[0]:g} to "
                f"{ASPECT_RANGE[1]:g} times the height, at least {MIN_HEIGHT} px high)")
    return None


def placement_problem(inst: Instance) -> str | None:
    """Why the label on this overview cannot be placed by its vendor's layout, or None: a
    Manufacturer with no known layout, or an image not shaped like the overviews it was measured on."""
    from .redact import matrix_size
    if overview_vendor(inst) is None:
        return "no vendor layout for this Manufacturer"
    return shape_problem(matrix_size(inst))


def label_box(inst: Instance, decoded: dict | None = None) -> Box | None:
    """The label on this overview as (x, y, w, h) overview pixels, or None (unknown, or the
    overview is not one its vendor's layout applies to: ``placement_problem``).
    ``decoded`` collects the codes decoded on it (``detect.barcodes.Decoded`` by instance index),
    so the source scan of the same pixels does not decode them again."""
    from ..detect.findings import union_box
    from ..detect.label_location import locate_label
    from .redact import matrix_size
    vendor = overview_vendor(inst)
    if vendor is None or placement_problem(inst) is not None:
        return None
    size = matrix_size(inst)
    # The vendor's default place is always blanked: a barcode read elsewhere (a sticker, a false
    # decode) grows the box, it never moves it off the label.
    codes = _barcodes(inst, decoded if decoded is not None else {})
    found = [b for b in (locate_label(size, vendor, None, []), locate_label(size, vendor, None, codes))
             if b is not None]
    if not found:
        return None
    box = union_box(found)
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1) if x2 > x1 and y2 > y1 else None


def _barcodes(inst: Instance, decoded: dict) -> list:
    """Barcodes decoded on the overview (the label's own, which grow the vendor's default box);
    an overview that does not decode gives none (the default box alone). The codes, in the
    image's pixels, go to ``decoded[inst.index]``."""
    from ..detect import barcodes
    from ..detect.scan import barcode_findings
    from .scanimage import instance_image
    try:
        img = instance_image(inst.path, inst.index)
    except (WsideidError, OSError, ValueError):
        return []
    if img is None:
        return []
    full = int_attr(inst.ds, "TotalPixelMatrixColumns", int_attr(inst.ds, "Columns"))
    scale = full / img.size[0] if img.size[0] else 1.0
    hits = tuple(barcodes.read_barcodes(img))
    decoded[inst.index] = barcodes.Decoded(img.size, hits)
    found = barcode_findings(img, "overview", [], decoded=decoded[inst.index])
    if scale != 1.0:  # the detectors read a reduced copy: boxes back to overview pixels
        import dataclasses
        found = [dataclasses.replace(f, box=tuple(round(v * scale) for v in f.box)) for f in found]
    return found


def plan_overview_labels(plan, macro: str | None, reencode_j2k: bool) -> None:
    """Overviews kept with their label blanked (``plan.macro_boxes``), or removed with the reason."""
    from .redact import frame_layout
    if macro != "blank-label":
        return
    by_index = {i.index: i for i in plan.inventory.container.source.instances}
    for d in plan.images:
        if d.image.role != "overview" or d.image.index not in by_index:
            continue
        inst = by_index[d.image.index]
        d.rule = "--macro blank-label"
        why = placement_problem(inst)
        box = None if why else label_box(inst, plan.inventory.container.overview_barcodes)
        if box is None:
            why = f"label location unknown: {why}" if why else "label location unknown"
            d.action, d.rule = ImageAction.REMOVE, f"{d.rule} ({why}: removed)"
            continue
        try:
            frame_layout(inst, reencode_j2k)
        except RedactionError as exc:
            d.action, d.rule = ImageAction.REMOVE, f"{d.rule} (cannot be blanked losslessly: {_short(exc)}; removed)"
            continue
        d.action = ImageAction.BLANK_LABEL
        d.rule += " (label area {},{},{},{} blanked)".format(*box)
        plan.macro_boxes.append((inst.index, box))


def _short(exc: Exception) -> str:
    """The reason without the instance prefix and the generic tail (it is not refused, it is removed)."""
    text = str(exc).split("): ", 1)[-1]
    return text.replace("; regions cannot be blanked without re-encoding", "")
