"""The 3DHistech MIRAX driver (``wsideid.mrxs`` holds the format's reader and writer).

The output is two names in OUTDIR, ``<stem>.mrxs`` and the folder
``<stem>/``, built together in one temp folder and published folder first
(the companion, see ``publish.commit``), then the .mrxs file: the .mrxs
file is what readers open, so it appears last, and a failure in between
removes the folder this run just published. Both names are checked free
before anything is written.
"""

from __future__ import annotations

import io
import os
import time

from ..enums import VerifyMode
from ..errors import WsideidError
from ..checks import Check, VerifyReport
from ..model import REPLACE, Field, Plan, ValueKind
from ..mrxs.slide import MrxsSlide, claims, inventory, open_mrxs, slide_files
from ..hashing import HashAlgorithm
from ..options import DeidOptions, hash_algorithm
from ..profiles import PlanOptions, load_profile, make_plan
from .base import Container, ImageRef, Opened, Written, profile_file, record_unchanged

MAX_MRXS_FILE = 1 << 16


def _mrxs_file_field(slide: MrxsSlide) -> Field | None:
    """The .mrxs file's own bytes: no reader interprets them, a person may have typed into them."""
    with open(slide.path, "rb") as fh:
        data = fh.read(MAX_MRXS_FILE)
    if not data:
        return None
    text = data.decode("latin-1")
    printable = all(c.isprintable() or c in "\r\n\t" for c in text)
    return Field(os.path.basename(slide.path), "mrxs-file:content", text.strip() if printable else f"<{len(data)} bytes>",
                 kind=ValueKind.TEXT if printable else ValueKind.BINARY)


def plan_slide(slide: MrxsSlide, options: DeidOptions) -> Plan:
    inv = inventory(slide)
    extra = _mrxs_file_field(slide)
    if extra is not None:
        inv.fields.append(extra)
    profile = load_profile("mirax", options.profile)
    plan = make_plan(inv, profile, PlanOptions(options.dates, options.new_id, options.strict, options.keep_macro,
                                               options.label))
    for d in plan.fields:
        if d.field.key == "general:SLIDE_ID":
            d.action, d.new_value, d.rule = REPLACE, keyed_slide_id(options, slide.slide_id), "general.SLIDE_ID (keyed)"
    plan.regions = [tuple(r) for r in (options.regions)]
    for d in plan.images:
        if plan.regions and d.image.role == "thumbnail" and d.action == "keep":
            # where the preview lies on the slide is not recorded: a region may show in it
            d.action, d.rule = "remove", "region blanking: the preview's placement is unknown, removed"
        if d.action == "replace" and not options.new_id:
            raise WsideidError("--label replace needs a research ID (--new-id)")
        if d.action == "blank-label":
            d.action, d.rule = "remove", "--macro blank-label is not available for MIRAX: removed"
    return plan


def keyed_slide_id(options: DeidOptions, old: str) -> str:
    """The same secret and slide give the same id; 32 hex digits like the scanner's."""
    return options.secret.digest("mrxs-slide-id", old.encode()).hex()[:32]


def _jpeg(data: bytes):
    from PIL import Image
    return Image.open(io.BytesIO(data)).convert("RGB")


class MiraxDriver:
    """MIRAX: a small .mrxs file and a folder of its stem (Slidedat.ini, Index.dat, Data*.dat)."""

    name = "mirax"
    title = "3DHistech MIRAX"
    container = Container.MIRAX
    extensions = (".mrxs",)
    reads_folders = False
    supports_in_place = False
    openslide_vendor = "mirax"
    phi_carriers = (
        "Carriers: every key of Slidedat.ini (slide name and id, project, creation date and time, scanner "
        "hardware ids in vendor groups, the names of non-hierarchical layers); the label "
        "(ScanDataLayer_SlideBarcode), the macro (ScanDataLayer_SlideThumbnail) and other non-hierarchical "
        "records (ProfileXML, histograms) in the data files; the data file headers (slide id, "
        "`ProfileName=...`); APPn/COM segments of JPEG records; the .mrxs file itself.",
        "The key file's [HIERARCHICAL] and [DATAFILE] groups are rebuilt from what is kept, the index is "
        "written anew, and each data file is a fresh header followed by the kept records only; SLIDE_ID "
        "becomes a keyed pseudonym everywhere it stands; the .mrxs file is written empty; camera positions "
        "are re-packed from checked numbers.",
    )

    def __repr__(self) -> str:
        return "MiraxDriver()"

    @property
    def profile(self) -> str:
        return profile_file(self.name)

    def claims(self, path: str) -> bool:
        return claims(path)

    def open(self, path: str) -> Opened:
        slide = open_mrxs(path)
        return Opened(self, path, slide, slide_files(slide.path))

    def plan(self, opened: Opened, options: DeidOptions) -> Plan:
        return plan_slide(opened.container, options)

    def write(self, opened: Opened, plan: Plan, scratch: str, final_name: str, options: DeidOptions,
              on_recipe=None) -> Written:
        from ..mrxs.write import write
        os.mkdir(scratch)
        stem = os.path.splitext(final_name)[0]
        sid = next(d.new_value for d in plan.fields if d.field.key == "general:SLIDE_ID")
        written = write(plan, os.path.join(scratch, final_name), sid, options.fill, options.new_id)
        return Written(written.mrxs, written, companions=[(written.folder, stem)])

    def verify(self, opened: Opened, plan: Plan, written: Written, options: DeidOptions) -> VerifyReport:
        from ..mrxs.verify import verify
        return verify(plan, written.state, opened.container, options.verify == VerifyMode.FULL, options.identifiers or [],
                      options.fill)

    def verify_existing(self, opened: Opened, output: str, options: DeidOptions) -> VerifyReport:
        from ..mrxs.verify import new_report
        rep = new_report()
        rep.record(Check.REPARSE, False, "checking an existing MIRAX output against its original is not available")
        return rep

    def source_images(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """The label and macro being removed, read from the source's records."""
        slide = opened.container
        return [ImageRef(nh.role, k, lambda nh=nh: _jpeg(slide.read(nh.record)))
                for k, nh in enumerate(slide.nonhier) if nh.role in ("label", "macro")]

    def residual_images(self, plan: Plan, written: Written) -> list[ImageRef]:
        """Every kept non-level image as it leaves (the preview, a generated label), read from
        the written data files."""
        w = written.state
        nonhier = plan.inventory.container.nonhier  # the MrxsSlide
        out_records = {nonhier.index(nh): rec for nh, rec in w.nonhier}

        def read(rec):
            with open(os.path.join(w.folder, f"Data{rec.fileno:04d}.dat"), "rb") as fh:
                fh.seek(rec.offset)
                return _jpeg(fh.read(rec.length))
        return [ImageRef(nh.role, k, lambda rec=out_records[k]: read(rec)) for k, nh in enumerate(nonhier)
                if k in out_records and nh.role in ("thumbnail", "label", "macro")]

    def residual_early(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """None: the kept records are read where the writer put them (data file, offset and
        length known only once written), on the residual thread, while verification runs."""
        return []

    def label_images(self, opened: Opened) -> list[ImageRef]:
        slide = opened.container
        return [ImageRef(nh.role, k, lambda nh=nh: _jpeg(slide.read(nh.record)))
                for k, nh in enumerate(slide.nonhier) if nh.role in ("label", "macro", "thumbnail")]

    def removed_preview(self, input_path: str, plan: Plan, index: int):
        return None  # records are read through the slide object, gone after the run

    def kept_previews(self, output: str, plan: Plan, scans: list) -> list[ImageRef]:
        return []  # as above

    def start_hashing(self, opened: Opened, options: DeidOptions) -> "_MiraxHashes":
        return _MiraxHashes(hash_algorithm(options))

    def output_name(self, input_path: str, stem: str) -> str:
        return stem + ".mrxs"

    def companion_names(self, stem: str) -> list[str]:
        return [stem]


class _MiraxHashes:
    """The output's .mrxs file and its folder's files, hashed at publish time with the run's
    algorithm (``hashing.py``: BLAKE3 by default, ``--hash sha256|blake3|none``)."""

    def __init__(self, algorithm: HashAlgorithm):
        self.algorithm = algorithm
        self.algorithm_name = algorithm.value
        self.enabled = algorithm is not HashAlgorithm.NONE
        self.stamps = None  # taken once written (``written``)

    def on_recipe(self, recipe) -> None:
        """Written record by record; nothing is hashed while writing."""

    def written(self, written: Written) -> None:
        """The .mrxs file and its folder's files stamped before verification reads them."""
        from ..hashing import PartStamps
        self.stamps = PartStamps(written.ready) if self.enabled else None

    def result(self, written: Written, report: VerifyReport) -> dict[str, str]:
        from ..hashing import tree_sha256
        if not self.enabled:
            return {}
        t0 = time.perf_counter()
        digest = tree_sha256(written.ready, self.algorithm.value)
        if not digest:
            raise WsideidError("cannot hash the output")
        record_unchanged(report, self.stamps, self.algorithm.value, time.perf_counter() - t0)
        return {"output": digest}

    def unchanged(self, written: Written) -> str | None:
        return self.stamps.unchanged() if self.enabled and self.stamps is not None else None
