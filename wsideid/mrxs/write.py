"""Write the de-identified MIRAX slide: a new key file, a new index, new data files.

Nothing of a source data file is copied wholesale: each output data file is
a fresh header followed by the kept records, one after another, so free
space, removed records (label, macro, ProfileXML) and the vendor's header
text ("ProfileName=...") never reach the output. JPEG records are reduced
to their decoding segments (``jpeg.structure.clean``: APPn/COM dropped);
their entropy-coded data is copied byte for byte. Camera positions are
numbers checked for plausibility (a position buffer is 8 free bytes in
every 9, so text would fit) and rewritten from the parsed values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import MalformedFile, WsideidError
from ..jpeg.structure import clean
from ..model import KEEP, REMOVE, Plan
from . import ini
from .index import Record, build_index
from .regions import pack_positions, parse_positions, record_boxes
from .slide import SCAN_DATA, SLIDEDAT, ZOOM, MrxsSlide, NonHier

INDEX = "Index.dat"


@dataclass
class Written:
    mrxs: str
    folder: str
    slide_id: str
    ini: ini.KeyFile
    levels: list[list[Record]]
    nonhier: list[tuple[NonHier, Record]]  # kept source value -> its record in the output
    expected: dict[Record, Record] = field(default_factory=dict)  # output record -> source record
    stripped: int = 0  # JPEG records whose APPn/COM segments were dropped
    generated: dict[Record, bytes] = field(default_factory=dict)  # output record -> generated label JPEG


def replaced_records(plan: Plan) -> set[int]:
    """Source non-hierarchical record numbers the plan replaces (a generated label)."""
    return {d.image.extra["record"] for d in plan.images if d.action == "replace" and "record" in d.image.extra}


def generated_label(slide: MrxsSlide, nh: NonHier, research_id: str) -> bytes:
    """A new label of the old one's size showing the research ID; no byte of the old one."""
    import io

    from PIL import Image

    from ..label_image import label_pixels
    with Image.open(io.BytesIO(slide.read(nh.record))) as old:
        size = old.size
    buf = io.BytesIO()
    Image.fromarray(label_pixels(research_id, *size)).save(buf, "JPEG", quality=90)
    return clean(buf.getvalue()).data


def kept_value(plan: Plan, group: str, key: str) -> str | None:
    """The value a key of ``group`` has in the output, or None when the plan removes it."""
    d = next((d for d in plan.fields if d.field.subkey == group and d.field.key.endswith(":" + key)), None)
    if d is None or d.action == REMOVE:
        return None
    return d.field.text() if d.action == KEEP else (None if d.new_value is None else str(d.new_value))


def _kept_group(plan: Plan, group: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    for key in plan.inventory.container.ini.groups.get(group, {}):
        if key in skip:
            continue
        v = kept_value(plan, group, key)
        if v is not None:
            out[key] = v
    return out


REQUIRED_LEVEL_KEYS = ("OVERLAP_X", "OVERLAP_Y", "MICROMETER_PER_PIXEL_X", "MICROMETER_PER_PIXEL_Y", "IMAGE_FORMAT",
                       "IMAGE_FILL_COLOR_BGR", "DIGITIZER_WIDTH", "DIGITIZER_HEIGHT", "IMAGE_CONCAT_FACTOR")
REQUIRED_GENERAL_KEYS = ("SLIDE_VERSION", "IMAGENUMBER_X", "IMAGENUMBER_Y", "OBJECTIVE_MAGNIFICATION")


def kept_nonhier(plan: Plan) -> list[tuple[int, NonHier]]:
    """Source record numbers of the non-hierarchical values the output keeps, in order."""
    slide: MrxsSlide = plan.inventory.container
    removed = {d.image.extra.get("record") for d in plan.images
               if d.action not in ("keep", "replace") and "record" in d.image.extra}
    return [(k, nh) for k, nh in enumerate(slide.nonhier)
            if nh.role == "positions" or (nh.role != "unknown" and k not in removed)]


def build_keyfile(plan: Plan, slide_id: str, nonhier: list[NonHier], n_files: int) -> ini.KeyFile:
    slide: MrxsSlide = plan.inventory.container
    kf = ini.KeyFile()
    general = _kept_group(plan, "GENERAL")
    missing = [k for k in REQUIRED_GENERAL_KEYS if k not in general]
    if missing:
        raise WsideidError(f"MIRAX [GENERAL] {missing[0]} failed its check; the slide cannot be read without it")
    general["SLIDE_ID"] = slide_id
    kf.groups["GENERAL"] = general
    hier = {"HIER_COUNT": "1", "HIER_0_NAME": ZOOM, "HIER_0_COUNT": str(len(slide.levels))}
    hier.update({f"HIER_0_VAL_{i}": f"ZoomLevel_{i}" for i in range(len(slide.levels))})
    hier.update({f"HIER_0_VAL_{i}_SECTION": f"LAYER_0_LEVEL_{i}_SECTION" for i in range(len(slide.levels))})
    layers: list[str] = []
    for nh in nonhier:
        if nh.layer not in layers:
            layers.append(nh.layer)
    hier["NONHIER_COUNT"] = str(len(layers))
    sections: dict[str, dict[str, str]] = {}
    for i, layer in enumerate(layers):
        vals = [nh for nh in nonhier if nh.layer == layer]
        hier[f"NONHIER_{i}_NAME"] = layer
        hier[f"NONHIER_{i}_COUNT"] = str(len(vals))
        for j, nh in enumerate(vals):
            hier[f"NONHIER_{i}_VAL_{j}"] = nh.value if layer == SCAN_DATA else "default"
            name = f"NONHIERLAYER_{i}_VAL_{j}_SECTION"
            hier[f"NONHIER_{i}_VAL_{j}_SECTION"] = name
            sections[name] = _kept_group(plan, nh.section) if nh.section else {}
    hier["INDEXFILE"] = INDEX
    kf.groups["HIERARCHICAL"] = hier
    kf.groups["DATAFILE"] = {"FILE_COUNT": str(n_files), **{f"FILE_{k}": f"Data{k:04d}.dat" for k in range(n_files)}}
    for i, lv in enumerate(slide.levels):
        group = _kept_group(plan, lv.section)
        missing = [k for k in REQUIRED_LEVEL_KEYS if k not in group]
        if missing:
            raise WsideidError(f"MIRAX [{ini.shown(lv.section)}] {missing[0]} failed its check; the slide cannot be read without it")
        kf.groups[f"LAYER_0_LEVEL_{i}_SECTION"] = group
    kf.groups.update(sections)
    return kf


def record_bytes(slide: MrxsSlide, rec: Record, boxes: list | None = None, fill: str = "white") -> tuple[bytes, bool]:
    """A JPEG record as it goes out: reduced to its decoding segments, ``boxes`` blanked in the
    coefficient domain (untouched blocks keep their exact coefficients); and whether segments went."""
    raw = slide.read(rec)
    if len(raw) != rec.length:
        raise MalformedFile("MIRAX data file is shorter than its index says")
    c = clean(raw)
    if not boxes:
        return c.data, c.changed
    from ..jpeg import JpegBlankingError, blank_regions
    try:
        return blank_regions(c.data, boxes, fill), c.changed
    except JpegBlankingError as exc:
        raise WsideidError(f"MIRAX record cannot be blanked: {exc}") from None


def data_header(slide_id: str, k: int) -> bytes:
    """What data file ``k`` starts with: version, slide ID, file number, then zeros."""
    return b"01.02" + slide_id.encode("ascii") + b"%03d" % k + bytes(256)


def write(plan: Plan, out_mrxs: str, slide_id: str, fill: str = "white", research_id: str | None = None) -> Written:
    """Write ``out_mrxs`` (empty) and its folder from ``plan``; returns what was written."""
    slide: MrxsSlide = plan.inventory.container
    boxes = record_boxes(slide, plan.regions)
    for lv in slide.levels:
        if lv.image_format != "JPEG":
            shown = lv.image_format if lv.image_format in ("PNG", "BMP", "JPEG2000") else "another format"
            raise WsideidError(f"MIRAX levels stored as {shown} are not supported (JPEG only)")
    folder = os.path.splitext(out_mrxs)[0]
    os.mkdir(folder)
    with open(out_mrxs, "wb"):
        pass
    n_files = len(slide.datafiles)
    kept = kept_nonhier(plan)
    files = [open(os.path.join(folder, f"Data{k:04d}.dat"), "wb") for k in range(n_files)]
    written = Written(out_mrxs, folder, slide_id, ini.KeyFile(), [], [])
    try:
        for k, fh in enumerate(files):
            fh.write(data_header(slide_id, k))

        def put(rec: Record, data: bytes, image: int = -1) -> Record:
            fh = files[rec.fileno]
            new = Record(rec.fileno, fh.tell(), len(data), image)
            fh.write(data)
            written.expected[new] = rec
            return new

        for li, lv in enumerate(slide.levels):
            recs = []
            for k, rec in enumerate(lv.records):
                data, changed = record_bytes(slide, rec, boxes.get((li, k)), fill)
                written.stripped += changed
                recs.append(put(rec, data, rec.image))
            written.levels.append(recs)
        replaced = replaced_records(plan)
        for k, nh in kept:
            if k in replaced:
                if not research_id:
                    raise WsideidError("a replacement label needs a research ID (--new-id)")
                label = generated_label(slide, nh, research_id)
                new = put(nh.record, label)
                written.generated[new] = label
                written.nonhier.append((nh, new))
                continue
            if nh.role == "positions":
                compressed = nh.layer != "VIMSLIDE_POSITION_BUFFER"
                data = pack_positions(parse_positions(slide.read(nh.record), slide, compressed), compressed)
            else:
                data, changed = record_bytes(slide, nh.record)
                written.stripped += changed
            written.nonhier.append((nh, put(nh.record, data)))
    finally:
        for fh in files:
            fh.close()
    written.ini = build_keyfile(plan, slide_id, [nh for _, nh in kept], n_files)
    with open(os.path.join(folder, SLIDEDAT), "wb") as fh:
        fh.write(ini.render(written.ini))
    with open(os.path.join(folder, INDEX), "wb") as fh:
        fh.write(build_index(slide_id, written.levels, [r for _, r in written.nonhier]))
    return written
