"""The TIFF-family driver: one class for every vendor module in ``wsideid.tiff_family.vendors``.

Why one class: SVS, NDPI, generic TIFF (and every vendor added later) share
the container (``wsideid.tiff``), the metadata model (``tiff_family.vendors.tiff_base``),
the lossless tile editing (``wsideid.tiff_family.redaction``), the writer and the
verifier; what differs is the vendor module's knowledge (which image is
which, how a vendor text splits into fields, where the label sits on the
macro). A vendor module has this shape (``TiffVendor``); ``TiffDriver``
turns it into a driver.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Protocol

from ..enums import ImageAction, LabelPolicy, Role, VerifyMode
from ..errors import MalformedFile, UnsupportedFormat, WsideidError
from .. import openslide_guard
from ..checks import Check, VerifyReport
from ..model import Inventory, Plan
from ..options import DeidOptions
from ..profiles import PlanOptions, load_profile, make_plan
from ..regions import Box
from ..tiff.container import TiffFile
from ..tiff.tags import COMPRESSION, JPEG_COMPRESSION
from ..tiff_family.vendors.tiff_base import J2K_COMPRESSIONS
from .base import Container, ImageRef, Opened, Written, profile_file


class TiffVendor(Protocol):
    """What a vendor module defines (module-level names)."""

    NAME: str  # format name ("aperio")
    TITLE: str  # for people ("Aperio SVS")
    EXTENSIONS: tuple[str, ...]  # output extensions, the default first
    PHI_CARRIERS: tuple[str, ...]  # where it holds PHI, for docs/phi-reference.md
    OPENSLIDE_VENDOR: str  # what openslide.vendor reads the output as (the reader check)

    def claims(self, tf: TiffFile) -> bool: ...
    def roles(self, tf: TiffFile) -> list: ...
    def inventory(self, tf: TiffFile) -> Inventory: ...
    def refine(self, plan: Plan) -> None: ...
    def build(self, tf: TiffFile, plan: Plan, edited=None, mcu_starts=None) -> tuple[list, str]: ...


class TiffDriver:
    """A driver for one TIFF-family vendor module."""

    container = Container.TIFF
    reads_folders = False
    supports_in_place = True

    def __init__(self, vendor: ModuleType):
        self.vendor = vendor
        self.name: str = vendor.NAME
        self.title: str = getattr(vendor, "TITLE", vendor.NAME)
        self.extensions: tuple[str, ...] = tuple(getattr(vendor, "EXTENSIONS", (".tiff", ".tif")))
        self.phi_carriers: tuple[str, ...] = tuple(getattr(vendor, "PHI_CARRIERS", ()))
        self.openslide_vendor: str | None = getattr(vendor, "OPENSLIDE_VENDOR", None)

    def __repr__(self) -> str:
        return f"TiffDriver({self.name})"

    @property
    def profile(self) -> str:
        return profile_file(self.name)

    # -- open ---------------------------------------------------------------------------

    def claims(self, tf: TiffFile) -> bool:
        return bool(self.vendor.claims(tf))

    def open(self, path: str, tf: TiffFile | None = None) -> Opened:
        return Opened(self, path, tf if tf is not None else read_container(path), [path])

    def inventory(self, opened: Opened) -> Inventory:
        return self.vendor.inventory(opened.container)

    # -- plan ---------------------------------------------------------------------------

    def plan(self, opened: Opened, options: DeidOptions) -> Plan:
        """The whole plan, frozen here: profile decisions, CLI overrides, vendor refinements,
        and where each kept macro's label is blanked (or why the macro is removed instead)."""
        openslide_guard.start(opened.path)  # OpenSlide's child opens the input beside planning and writing
        inv = self.inventory(opened)
        profile = load_profile(self.name, options.profile)
        if options.label == LabelPolicy.REPLACE and not options.new_id:
            raise WsideidError("--label replace needs --new-id (the research ID the new label shows)")
        plan = make_plan(inv, profile, PlanOptions(options.dates, options.new_id, options.strict, options.keep_macro,
                                                   label=options.label))
        if options.macro is not None:
            for d in plan.images:
                if d.image.role in (Role.MACRO, Role.OVERVIEW):
                    d.action, d.rule = options.macro, f"--macro {options.macro}"
        plan.regions = [tuple(r) for r in options.regions]
        if options.reencode_j2k:
            plan.options["reencode_j2k"] = True  # JPEG 2000 tiles may be blanked by re-encoding the touched ones
        self.vendor.refine(plan)
        self._plan_macro_labels(opened.container, plan)
        return plan

    def _plan_macro_labels(self, tf: TiffFile, plan: Plan) -> None:
        """Macros kept with ``blank-label``: the label box is decided now and recorded in
        ``plan.macro_boxes``. Where the label cannot be located, or the macro is not baseline
        JPEG (blanking would re-encode), the macro is removed instead, and the rule says why:
        keeping it unblanked would keep the label."""
        for d in plan.images:
            if d.action != ImageAction.BLANK_LABEL:
                continue
            box = self.macro_label_box(tf, d.image.index)
            ifd = tf.image_ifds()[d.image.index]
            if box is None:
                d.action, d.rule = ImageAction.REMOVE, d.rule + " (label location unknown: removed)"
            elif ifd.value(COMPRESSION, 1) != JPEG_COMPRESSION and not (
                    plan.options.get("reencode_j2k") and ifd.value(COMPRESSION, 1) in J2K_COMPRESSIONS):
                d.action, d.rule = ImageAction.REMOVE, d.rule + " (macro cannot be blanked losslessly: removed)"
            else:
                plan.macro_boxes.append((d.image.index, box))

    def macro_label_box(self, tf: TiffFile, index: int) -> Box | None:
        """Where the physical label is on the macro, in macro pixels (x, y, w, h): the vendor's
        own hint when it has one, else the vendor's default place (``detect.label_location``)."""
        from ..detect.label_location import locate_label
        ifd = tf.image_ifds()[index]
        size = (int(ifd.value(256)), int(ifd.value(257)))
        hint_of = getattr(self.vendor, "label_hint", None)
        hint = hint_of(ifd, size) if hint_of is not None else None
        box = locate_label(size, self.name, hint, [])
        if box is None:
            return None
        x1, y1, x2, y2 = box
        return (x1, y1, x2 - x1, y2 - y1)

    # -- write --------------------------------------------------------------------------

    def edits(self, opened: Opened, plan: Plan, fill: str, deferred: bool = False):
        """Tile edits the plan asks for: APPn/COM segments stripped, then the recorded macro
        label boxes and the regions blanked. ``deferred``: JPEG tiles judged by their headers;
        the full check is ``edits.tiles.pending``."""
        from ..tiff_family import redaction
        tf = opened.container
        edits = redaction.stripped_segments(tf, plan, deferred)
        redaction.blank_macro_labels(tf, plan, fill, edits)
        shown = getattr(self.vendor, "shown_sizes", None)  # a vendor whose levels are stored padded
        redaction.plan_regions(tf, plan, list(plan.regions), fill, edits, shown(tf) if shown is not None else None)
        return edits

    def write(self, opened: Opened, plan: Plan, scratch: str, final_name: str, options: DeidOptions,
              on_recipe=None) -> Written:
        """Optimistic: tiles with clean headers are copied while their bytes are checked; if the
        check finds a stream the rule changes, the output is written again with the exact edits
        (a rare, hostile or unusual file pays two writes, never a leak)."""
        from ..tiff.writer import write_tiff

        tf = opened.container
        edits = self.edits(opened, plan, options.fill, deferred=True)
        check = _StreamCheck(tf.path, edits.tiles.pending, getattr(on_recipe, "checked", None))
        check.start()
        try:
            ifds, kind = self.vendor.build(tf, plan, edits.tiles, edits.mcu_starts)
            if not ifds:
                raise WsideidError(plan.nothing_kept())
            write_tiff(tf.path, scratch, ifds, kind, tf.byteorder, on_recipe=on_recipe)
        finally:
            check.join()
        if check.error is not None:
            raise check.error
        if check.dirty:
            os.unlink(scratch)
            edits = self.edits(opened, plan, options.fill)  # the exact pass: every stream parsed as needed
            ifds, kind = self.vendor.build(tf, plan, edits.tiles, edits.mcu_starts)
            write_tiff(tf.path, scratch, ifds, kind, tf.byteorder, on_recipe=on_recipe)
        _record_reencoded(plan, tf, edits.tiles)
        return Written(scratch, edits.tiles, [self._ref(scratch, role, index) for role, index in
                                              _residual_targets(plan, _kept_index_map(plan))])

    # -- verify -------------------------------------------------------------------------

    def verify(self, opened: Opened, plan: Plan, written: Written, options: DeidOptions) -> VerifyReport:
        from ..tiff_family.verify import verify_tiff
        return verify_tiff(opened.container, written.ready, plan, self.vendor, written.state,
                           full=options.verify == VerifyMode.FULL, identifiers=options.identifiers)

    def verify_existing(self, opened: Opened, output: str, options: DeidOptions) -> VerifyReport:
        from ..tiff_family.verify import verify_tiff
        plan = self.plan(opened, options)
        edited = self.edits(opened, plan, options.fill).tiles
        try:
            return verify_tiff(opened.container, output, plan, self.vendor, edited,
                               full=options.verify == VerifyMode.FULL, identifiers=options.identifiers)
        except WsideidError as exc:
            from ..tiff_family.verify import NOT_APPLICABLE
            rep = VerifyReport(NOT_APPLICABLE)
            rep.record(Check.REPARSE, False, str(exc))
            return rep

    # -- detectors ----------------------------------------------------------------------

    def source_images(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """Removed images a person should see: label, macro, overview, and every image whose
        role could not be established."""
        return [self._ref(opened.path, d.image.role, d.image.index) for d in plan.images
                if d.image.role in (Role.LABEL, Role.MACRO, Role.OVERVIEW, Role.UNKNOWN)]

    def residual_images(self, plan: Plan, written: Written) -> list[ImageRef]:
        """Every kept image except the full-resolution level, as written (see ``write``); reduced
        levels a smaller scanned level covers are marked skipped (``_level_cover``)."""
        import dataclasses
        cover = _level_cover(plan, _kept_index_map(plan))
        return [dataclasses.replace(r, covered_by=cover.get(r.index)) for r in written.images]

    def residual_early(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """The residual images whose pixels the run leaves as they are (action keep, no region
        blanked on them), read from the source while the output is written; indices as in the
        output. The stream rule drops only segments that do not decode and unused tables, and
        verification checks that the decodings match."""
        out_of = _kept_index_map(plan)
        action = {out_of[d.image.index]: d for d in plan.images if d.image.index in out_of}
        cover = _level_cover(plan, out_of)
        early = []
        for role, out in _residual_targets(plan, out_of):
            d = action[out]
            blanked = bool(plan.regions) and d.image.role in (Role.LEVEL, Role.THUMBNAIL)
            if d.action == ImageAction.KEEP and not blanked:
                early.append(ImageRef(role, out, lambda src=d.image.index: self.read_image(opened.path, src),
                                      cover.get(out)))
        return early

    def label_images(self, opened: Opened) -> list[ImageRef]:
        """``wsideid scan``: every image that is not a pyramid level."""
        return [self._ref(opened.path, im.role, im.index) for im in self.inventory(opened).images
                if im.role != Role.LEVEL]

    def removed_preview(self, input_path: str, plan: Plan, index: int):
        """Image ``index`` of the source, removed from the output, for the QC page."""
        return self.read_image(input_path, index)

    def kept_previews(self, output: str, plan: Plan, scans: list) -> list[ImageRef]:
        """The scanned kept images, read from the published output (indices as in the output)."""
        if not os.path.isfile(output):
            return []
        return [self._ref(output, sc.role, sc.index) for sc in scans]

    def read_image(self, path: str, index: int):
        """Image ``index`` as a PIL image in bounded memory: an IFD image (``tiff.pixels``), or,
        past the IFD images, one the vendor holds inside its metadata (Philips XML)."""
        from ..tiff.pixels import read_tiff_image
        embedded = getattr(self.vendor, "embedded_image", None)
        if embedded is not None:
            tf = read_container(path)
            if index >= len(tf.image_ifds()):
                return embedded(tf, index).convert("RGB")
        return read_tiff_image(path, index)

    def _ref(self, path: str, role: str, index: int, covered_by: int | None = None) -> ImageRef:
        return ImageRef(role, index, lambda: self.read_image(path, index), covered_by)

    def start_hashing(self, opened: Opened, options: DeidOptions) -> "_TiffHashes":
        from ..options import hash_algorithm
        return _TiffHashes(opened.path, hash_algorithm(options), options.hash_input)

    def companion_names(self, stem: str) -> list[str]:
        return []

    def output_name(self, input_path: str, stem: str) -> str:
        """The chosen stem with the format's own extension, not the input's: a name like
        ``DOE.JANE`` must not leave ``R-1.jane`` behind. A generic TIFF keeps .tif or .tiff."""
        ext = os.path.splitext(input_path.rstrip(os.sep))[1].lower()
        return stem + (ext if ext in self.extensions else self.extensions[0])

    def in_place(self, opened: Opened, plan: Plan, options: DeidOptions):
        """``--in-place``: rewrite the slide itself, crash-safely (see ``wsideid.tiff_family.inplace``)."""
        from ..tiff_family.inplace import InPlaceError, deidentify_in_place
        from ..tiff_family.source_view import source_view
        from ..tiff_family.verify import sample_digests, verify_tiff

        # OpenSlide's reading of the input, taken now: after the switch its path is the output
        view = source_view(opened.path, plan)
        if view.refusal:  # a check the rewritten slide would fail: asked before anything changes
            raise InPlaceError(f"{view.refusal}; the slide was not changed")
        edits = self.edits(opened, plan, options.fill)
        full = options.verify == VerifyMode.FULL
        before = sample_digests(opened.container, plan, edits.tiles, full)

        def check(path: str) -> VerifyReport:
            rep = verify_tiff(opened.container, path, plan, self.vendor, edits.tiles, full=full,
                              identifiers=options.identifiers, source=view)
            after = sample_digests(opened.container, plan, edits.tiles, full)
            rep.record(Check.IMAGE_DATA, before == after, f"{len(before)} tile digests compared before/after",
                       part="unchanged in place")
            return rep

        res = deidentify_in_place(opened, plan, edits, check)
        # The rewritten slide holds the kept images in the copy's order (one ``vendor.build``), so
        # the residual scan reads them as it would read a copy's (level cover included).
        res.images = self.residual_images(plan, Written(opened.path, edits.tiles, [
            self._ref(opened.path, role, index) for role, index in _residual_targets(plan, _kept_index_map(plan))]))
        return res


class _TiffHashes:
    """The output hashed from the file on disk, in a thread started as soon as it is written
    (``hashing.OutputHasher``: through the page cache, beside verification), with its stamp
    taken first: the recorded hash is that of the bytes verified and published, checked again
    just before the rename. In the same read, each chunk of the file is compared with the
    writer's plan (``on_recipe``, read from the source): image-data then covers every byte,
    not only its sample. The input, only when asked for (``--hash-input``: a second pass over
    it), in a thread from the start."""

    def __init__(self, path: str, algorithm, hash_input: bool):
        from ..hashing import HashAlgorithm, Hasher
        self.path, self.algorithm = path, algorithm
        self.algorithm_name = algorithm.value
        self.enabled = algorithm is not HashAlgorithm.NONE
        self.input = Hasher(path, algorithm) if self.enabled and hash_input else None
        self.output = None
        self.recipe = None
        self.compared = False  # whether the output's hash compared the file with the writer's recipe
        if self.input is not None:
            self.input.start()

    def on_recipe(self, recipe) -> None:
        """The output as the writer means it (new metadata, the source ranges in output order,
        the edited tiles): compared with the file as it is read for its hash, it proves every
        byte written is the planned one, where image-data compares a sample of tiles (a copy
        gone wrong, or a byte changed before the stamp). Until issue 14's sixth round it was
        hashed from the source beside the copy and the two digests compared: the same proof
        for a second hash of the whole slide. A rewrite (the stream rule's exact pass) hands a
        new recipe, which replaces this one."""
        if self.enabled:
            self.recipe = recipe

    def written(self, written: Written) -> None:
        from ..hashing import OutputHasher
        if self.enabled:
            self.output = OutputHasher(written.ready, self.algorithm, self.recipe, self.path)
            # the hasher holds the recipe until it has compared the file with it (its metadata bytes
            # hold the tile tables: 8 or 16 bytes a tile, let go before verification's peak)
            self.compared, self.recipe = self.recipe is not None, None
            self.output.start()

    def result(self, written: Written, report: VerifyReport) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for label, h in (("input", self.input), ("output", self.output)):
            if h is not None:
                hashes[label] = h.result(label)
        if self.compared and self.output is not None:
            same = self.output.planned is True
            report.record(Check.IMAGE_DATA, same, "every byte of the file is the writer's plan (read back and "
                          "compared with the plan, chunk by chunk)" if same else "the file on disk is not what "
                          "the writer planned (a byte of the file differs from the plan's)", part="whole file")
        if self.output is not None:
            why = self.output.unchanged(written.ready)
            report.add_seconds(Check.OUTPUT_HASH, self.output.seconds)
            report.record(Check.OUTPUT_HASH, why is None, why or
                          f"the recorded {self.algorithm.value} is the file's own, read back from disk once written; "
                          "unchanged since (inode, size, mtime, ctime)")
        return hashes

    def unchanged(self, written: Written) -> str | None:
        """Just before the rename: None when the file is still the one hashed and verified."""
        return self.output.unchanged(written.ready) if self.output is not None else None


def read_container(path: str) -> TiffFile:
    """The parsed TIFF; a structure the parser trips over is a one-line MalformedFile."""
    from ..tiff.container import read_tiff
    try:
        tf = read_tiff(path)
    except (MalformedFile, UnsupportedFormat):
        raise
    except (ValueError, OverflowError, MemoryError, IndexError) as exc:
        raise MalformedFile(f"corrupt TIFF structure ({type(exc).__name__})") from None
    if not tf.ifds:
        raise MalformedFile("TIFF has no image directories")
    return tf


def _residual_targets(plan: Plan, kept_index_map: dict[int, int]) -> list[tuple[str, int]]:
    """Images that stay in the output, as (role, output index): every kept image
    except the full-resolution level (its size, so NDPI focal planes of it too).

    Thumbnails, kept macros, replacement labels and every smaller level: a
    sticker or handwriting inside the scanned area shows there, and an image
    taken for a level may be a label; each is read reduced to
    ``tiff.pixels.OUTPUT_SCAN_PIXELS``, so the cost is bounded per image.
    """
    kept = [d for d in plan.images if d.action != "remove" and d.image.index in kept_index_map]
    levels = [d.image for d in kept if d.image.role == "level"]
    full = max(((im.width, im.height) for im in levels), key=lambda s: s[0] * s[1], default=None)
    return [(d.image.role, kept_index_map[d.image.index]) for d in kept
            if not (d.image.role == "level" and (d.image.width, d.image.height) == full)]


def _kept_index_map(plan: Plan) -> dict[int, int]:
    """Source image index -> output image index of every kept image."""
    kept = [d.image.index for d in plan.images if d.action != ImageAction.REMOVE]
    return {src: out for out, src in enumerate(kept)}


def _level_cover(plan: Plan, kept_index_map: dict[int, int]) -> dict[int, int]:
    """Output index of each reduced level the residual scan skips -> the output index of the
    smaller scanned level that covers it (``wsideid.level_cover``). A pyramid is the file's
    top-level levels, or the SubIFD levels of one image."""
    from ..level_cover import LevelSize, covering
    scanned = {out for role, out in _residual_targets(plan, kept_index_map) if role == Role.LEVEL}
    return covering([LevelSize(kept_index_map[d.image.index], d.image.width, d.image.height,
                               d.image.extra.get("parent", -1))
                     for d in plan.images if kept_index_map.get(d.image.index) in scanned])


class _StreamCheck(threading.Thread):
    """The stream rule's full check (every byte of every JPEG tile up to its first EOI), run
    beside the kernel's copy instead of before it. The headers, where encoders put their
    comments, were judged before writing; this finds what only the entropy-coded data or the
    bytes after an EOI show. Joined before verification: nothing is published unchecked."""

    def __init__(self, path: str, pending: list, done=None):
        super().__init__(daemon=True)
        self.path, self.pending, self.done = path, pending, done
        self.dirty: list[tuple[int, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        from ..tiff.jpegsegs import check_pending
        try:
            self.dirty = check_pending(self.path, self.pending)
            self.pending.clear()  # 24 bytes a tile (indices, offsets, counts) not kept for the rest of the run
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc
        finally:
            if self.done is not None:  # the pipeline's residual scan starts its early reads
                self.done()


def _record_reencoded(plan: Plan, tf: TiffFile, tiles) -> None:
    """JPEG 2000 tiles re-encoded by ``--reencode-j2k``, named in the plan's options for the audit
    (image path -> tile indices)."""
    boxes = getattr(tiles, "pixel_boxes", {})
    if boxes:
        flat = list(tf.all_ifds())
        plan.options["reencoded_j2k_tiles"] = {flat[k].path: sorted(v) for k, v in sorted(boxes.items())}
