"""Open a MIRAX slide: its key file, its index, and what each record is.

Roles come from the key file's own vocabulary, as OpenSlide reads it:
HIER_0 "Slide zoom level" values are pyramid levels; in the "Scan data
layer", ScanDataLayer_SlideBarcode is the label, ScanDataLayer_SlideThumbnail
the macro (a photo of the whole glass) and ScanDataLayer_SlidePreview the
thumbnail; VIMSLIDE_POSITION_BUFFER (or StitchingIntensityLayer) places
the camera images. Every other non-hierarchical record (ProfileXML,
histograms, vendor layers) and every other hierarchical layer is an
image or blob whose role we cannot establish: removed, and recorded.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from ..errors import MalformedFile
from ..model import Field, ImageInfo, Inventory, ValueKind
from . import ini
from .index import Record, read_index

SLIDEDAT = "Slidedat.ini"
ZOOM = "Slide zoom level"
SCAN_DATA = "Scan data layer"
POSITION_LAYERS = ("VIMSLIDE_POSITION_BUFFER", "StitchingIntensityLayer")
SCAN_ROLES = {"ScanDataLayer_SlideBarcode": "label", "ScanDataLayer_SlideThumbnail": "macro",
              "ScanDataLayer_SlidePreview": "thumbnail"}
MAX_FILES = 4096
# Bytes one record may hold: records are read whole (the stream rule, blanking, verification), so a
# record of 300 MB over a hole in a sparse data file grew a run to 300 MB of RSS. A camera image
# is a JPEG of well under 1 MB, a slide photo a few MB; 16 MB keeps a run inside its 100 MB.
MAX_RECORD = 16 << 20


@dataclass
class Level:
    section: str
    width: int  # of the level, in px
    height: int
    image_format: str
    records: list[Record]


@dataclass
class NonHier:
    """One non-hierarchical value: its layer name, value name, section and record."""

    layer: str
    value: str
    section: str | None
    record: Record
    role: str  # label | macro | thumbnail | positions | unknown


@dataclass
class MrxsSlide:
    path: str
    folder: str
    ini: ini.KeyFile
    slide_id: str
    levels: list[Level]
    nonhier: list[NonHier]
    datafiles: list[str]
    groups: dict[str, str] = field(default_factory=dict)  # ini group -> profile section
    other_hier: list[str] = field(default_factory=list)  # names of hierarchical layers beyond HIER_0

    def read(self, rec: Record) -> bytes:
        if rec.length > MAX_RECORD:
            raise MalformedFile(f"MIRAX Index.dat: a record of {rec.length >> 20} MB is larger than the "
                                f"{MAX_RECORD >> 20} MB an image record may hold (hostile or corrupt file)")
        with open(self.datafiles[rec.fileno], "rb") as fh:
            fh.seek(rec.offset)
            return fh.read(rec.length)


def folder_of(path: str) -> str:
    return os.path.splitext(os.path.abspath(path))[0]


def slide_files(path: str) -> list[str]:
    """Every file of a MIRAX slide: the .mrxs and everything in its folder.

    One list for opening the slide and for naming it: the .mrxs alone is often
    the same bytes for every slide of a scanner, so a pseudonym taken from it
    gave two slides of a batch one name (the second refused as "same slide
    content") and a batch another name than a single ``deid`` of the same slide.
    """
    folder = folder_of(path)
    return [os.path.abspath(path)] + [os.path.join(folder, n) for n in sorted(os.listdir(folder))]


def claims(path: str) -> bool:
    """A MIRAX slide: a file that is not a TIFF, and beside it a folder of its stem holding a
    Slidedat.ini with [GENERAL] SLIDE_ID and [HIERARCHICAL] (the content decides, not the suffix)."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            if fh.read(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
                return False
        dat = os.path.join(folder_of(path), SLIDEDAT)
        if not os.path.isfile(dat) or os.path.getsize(dat) > ini.MAX_SIZE:
            return False
        with open(dat, "rb") as fh:
            head = fh.read(ini.MAX_SIZE)
        return b"[GENERAL]" in head and b"SLIDE_ID" in head and b"[HIERARCHICAL]" in head
    except OSError:
        return False


def _plain_file(folder: str, name: str, what: str) -> str:
    """A file directly in the slide's folder: no separators, no '..', no link, a regular file."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise MalformedFile(f"MIRAX {what} is not a plain file name in the slide's folder")
    path = os.path.join(folder, name)
    try:
        st = os.lstat(path)
    except OSError:
        raise MalformedFile(f"MIRAX {what} is missing") from None  # (its name is the file's text: not quoted)
    if not stat.S_ISREG(st.st_mode):
        raise MalformedFile(f"MIRAX {what} is not a regular file")
    return path


def _nonhier_values(kf: ini.KeyFile) -> list[tuple[str, str, str | None]]:
    """(layer name, value name, section) for every non-hierarchical record, in record order."""
    count = kf.need_int("HIERARCHICAL", "NONHIER_COUNT", 0, 4096)
    out = []
    for i in range(count):
        layer = kf.need("HIERARCHICAL", f"NONHIER_{i}_NAME")
        n = kf.need_int("HIERARCHICAL", f"NONHIER_{i}_COUNT", 1, 4096)
        for j in range(n):
            out.append((layer, kf.get("HIERARCHICAL", f"NONHIER_{i}_VAL_{j}") or "",
                        kf.get("HIERARCHICAL", f"NONHIER_{i}_VAL_{j}_SECTION")))
    return out


def divisions(kf: ini.KeyFile) -> int:
    """GENERAL/CameraImageDivisionsPerSide (1 when absent), checked: the placement of records
    divides by it, so 0, a negative number or text was a ZeroDivisionError or ValueError."""
    if kf.get("GENERAL", "CameraImageDivisionsPerSide") is None:
        return 1
    return kf.need_int("GENERAL", "CameraImageDivisionsPerSide", 1, 1 << 10)


def _check_grid(recs: list[Record], level: int, images_x: int, images_y: int, step: int) -> None:
    """Every record of a zoom level places one image of the slide's tile grid, on the level's
    step, at most once. A record past the grid, off the step or repeating a placed image is shown
    by no viewer (OpenSlide refuses the first two and shows one of a repeated pair), yet the writer
    would copy it: a JPEG of a name published where no detector looks (round 5)."""
    seen: set[int] = set()
    for r in recs:
        x, y = r.image % images_x, r.image // images_x
        if not 0 <= r.image < images_x * images_y or x % step or y % step or r.image in seen:
            raise MalformedFile(f"MIRAX Index.dat: a zoom level {level} record lies outside the slide's tile grid "
                                "or repeats an image")
        seen.add(r.image)


def open_mrxs(path: str) -> MrxsSlide:
    folder = folder_of(path)
    dat = _plain_file(folder, SLIDEDAT, "key file")
    if os.path.getsize(dat) > ini.MAX_SIZE:
        raise MalformedFile("MIRAX Slidedat.ini is larger than 1 MiB")
    with open(dat, "rb") as fh:
        kf = ini.parse(fh.read())
    slide_id = kf.need("GENERAL", "SLIDE_ID")
    if not slide_id.isascii() or not 0 < len(slide_id) <= 128:
        raise MalformedFile("MIRAX SLIDE_ID is not a short ASCII identifier")
    images_x = kf.need_int("GENERAL", "IMAGENUMBER_X", 1, 1 << 20)
    images_y = kf.need_int("GENERAL", "IMAGENUMBER_Y", 1, 1 << 20)
    divisions(kf)
    if kf.need("HIERARCHICAL", "HIER_0_NAME") != ZOOM:
        raise MalformedFile("MIRAX HIER_0 is not the slide zoom level")
    n_levels = kf.need_int("HIERARCHICAL", "HIER_0_COUNT", 1, 32)
    n_files = kf.need_int("DATAFILE", "FILE_COUNT", 1, MAX_FILES)
    datafiles = [_plain_file(folder, kf.need("DATAFILE", f"FILE_{k}"), "data file") for k in range(n_files)]
    index = _plain_file(folder, kf.need("HIERARCHICAL", "INDEXFILE"), "index file")
    values = _nonhier_values(kf)
    with open(index, "rb") as fh:  # read where the walk goes, not whole
        records, nonhier_recs = read_index(fh.fileno(), slide_id, n_levels, len(values))
    sizes = [os.path.getsize(p) for p in datafiles]
    for rec in [r for lv in records for r in lv] + nonhier_recs:
        if rec.fileno >= n_files or rec.offset + rec.length > sizes[rec.fileno]:
            raise MalformedFile("MIRAX Index.dat points outside its data files")
    groups = {"GENERAL": "general", "HIERARCHICAL": "hierarchical", "DATAFILE": "datafile"}
    levels: list[Level] = []
    concat = 0
    for i in range(n_levels):
        section = kf.need("HIERARCHICAL", f"HIER_0_VAL_{i}_SECTION")
        groups[section] = "level"
        concat += kf.need_int(section, "IMAGE_CONCAT_FACTOR", 0 if i == 0 else 1, 16)
        w = kf.need_int(section, "DIGITIZER_WIDTH", 1, 1 << 16)
        h = kf.need_int(section, "DIGITIZER_HEIGHT", 1, 1 << 16)
        for key, side in (("OVERLAP_X", w), ("OVERLAP_Y", h)):  # overlaps a neighbour by less than itself
            if kf.get(section, key) is not None:
                kf.need_float(section, key, 0, side)
        _check_grid(records[i], i, images_x, images_y, 1 << concat)
        levels.append(Level(section, images_x * w >> concat, images_y * h >> concat,
                            kf.need(section, "IMAGE_FORMAT"), records[i]))
    nonhier = []
    for (layer, value, section), rec in zip(values, nonhier_recs):
        if section:
            groups.setdefault(section, "nonhier_value")
        role = (SCAN_ROLES.get(value, "unknown") if layer == SCAN_DATA
                else "positions" if layer in POSITION_LAYERS else "unknown")
        nonhier.append(NonHier(layer, value, section, rec, role))
    hier_count = kf.need_int("HIERARCHICAL", "HIER_COUNT", 1, 64)
    other = [kf.get("HIERARCHICAL", f"HIER_{i}_NAME") or f"HIER_{i}" for i in range(1, hier_count)]
    return MrxsSlide(os.path.abspath(path), folder, kf, slide_id, levels, nonhier, datafiles, groups, other)


def _kind(key: str, value: str) -> ValueKind:
    if key == "SLIDE_ID":
        return ValueKind.IDENTIFIER
    try:
        float(value)
        return ValueKind.NUMBER
    except ValueError:
        return ValueKind.TEXT


def inventory(slide: MrxsSlide) -> Inventory:
    fields = []
    counts: dict[str, int] = {}
    for group, keys in slide.ini.groups.items():
        section = slide.groups.get(group, "unreferenced")
        # A level's or a value's group is named by the file too (HIER_0_VAL_0_SECTION = <name>):
        # outside 3DHistech's vocabulary the path names it by its kind and order instead, since
        # the audit prints a known key's path whole ("Slidedat.ini/[<the patient's name>]/OVERLAP_X"
        # was published in the audit: planted-PHI round 6).
        shown = group if ini.shown(group) == group else f"<{section} group {counts.get(section, 0)}>"
        counts[section] = counts.get(section, 0) + 1
        for key, value in keys.items():
            # an unreferenced group's name is the file's text like its keys: it goes into the last
            # path segment, which the audit replaces by its HMAC (a group named after the patient
            # was printed in the audit)
            path = (f"Slidedat.ini/[{shown}]/{key}" if section != "unreferenced"
                    else f"Slidedat.ini/unreferenced/[{group}]{key}")
            fields.append(Field(path, f"{section}:{key}", value, subkey=group, kind=_kind(key, value)))
    images = [ImageInfo(i, "level", lv.width, lv.height, lv.image_format.lower(), True, len(lv.records),
                        {"section": lv.section}) for i, lv in enumerate(slide.levels)]
    base = len(images)
    for k, nh in enumerate(slide.nonhier):
        if nh.role == "positions":
            continue  # camera positions: numbers the reader needs, checked by the writer, not an image
        extra = {"layer": nh.layer, "record": k}
        if nh.role == "unknown":
            # the layer's name is the file's text, and a reason reaches the audit: not quoted
            extra["reason"] = f"non-hierarchical record {k} is of a layer that is not an image we know"
        images.append(ImageInfo(base + k, nh.role, 0, 0, "jpeg" if nh.role != "unknown" else "data", False, 1, extra))
    for i, name in enumerate(slide.other_hier, 1):  # focus or filter layers: not read, not carried over
        images.append(ImageInfo(base + len(slide.nonhier) + i - 1, "unknown", 0, 0, "data", True, 0,
                                {"layer": name, "reason": f"hierarchical layer {i} is not the slide zoom level"}))
    return Inventory("mirax", slide.path, images, fields, container=slide)
