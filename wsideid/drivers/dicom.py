"""The DICOM WSI driver: a slide is a file or a folder of instances (a series).

Annex E de-identification with keyed UIDs (``wsideid.dicom``): the driver
loads the instances, plans them with the DICOM profile and rules, writes
every kept instance into a folder inside the run's temporary folder,
verifies them, and tells the runner which instances the detectors read.
pydicom is imported only when a DICOM input is met (it costs a quarter
second of every run otherwise).
"""

from __future__ import annotations

import os
from typing import Any

from ..enums import LabelPolicy, MacroPolicy, VerifyMode
from ..errors import MalformedFile, WsideidError
from ..keys import Secret, load_secret
from ..checks import Check, VerifyReport
from ..hashing import HashAlgorithm
from ..model import Plan
from ..options import DeidOptions, hash_algorithm
from ..profiles import load_profile
from ..sniff import is_dicom_input
from .base import Container, ImageRef, Opened, Written, profile_file, record_unchanged

PYDICOM_VALUE_ERRORS = (ValueError, TypeError, NotImplementedError, OverflowError, KeyError)


# A lone level this small is scanned whole by the residual scan (see ``_reduced_levels``).
LOW_RES_LEVEL_PIXELS = 4_000_000


def dicom_options(options: DeidOptions):
    """The DICOM-only options (``wsideid.dicom.plan.DicomOptions``), defaults when none were given."""
    from ..dicom.plan import DicomOptions
    return options.dicom or DicomOptions()


def _secret(options: DeidOptions) -> Secret:
    """The run's secret (``options.secret``), else the DICOM options' one, else random for this run."""
    s = options.secret or dicom_options(options).secret
    return s if s is not None else load_secret(None, allow_random=True)


def _columns(options: DeidOptions, profile=None) -> set[str]:
    from ..dicom.options import option_columns
    return option_columns(dicom_options(options).options, options, profile)


def _label(options: DeidOptions) -> str:
    """``--dicom-option generated-label`` or the general ``--label replace``."""
    if dicom_options(options).label == "generate" or options.label == LabelPolicy.REPLACE:
        return "generate"
    return "remove"


def plan_source(src, options: DeidOptions, secret: Secret | None = None) -> Plan:
    """The profile's plan of a loaded ``DicomSource``."""
    from ..dicom.options import date_policy
    from ..dicom.overview import plan_overview_labels
    from ..dicom.plan import make_dicom_plan
    from ..dicom.rules import DicomRules
    from ..dicom.uids import UidMapper
    profile = load_profile("dicom", options.profile)
    rules = DicomRules(profile, _columns(options, profile))
    uids = UidMapper(secret or _secret(options), rules.coding_scheme_uids)
    patient_id = uids.pseudonym("dicom-PatientID", options.subject) if options.subject else None  # one per subject
    try:
        plan = make_dicom_plan(src, profile, rules, uids, date_policy(options.dates, rules), options.new_id,
                               options.strict, options.keep_macro or options.macro == MacroPolicy.KEEP,
                               _label(options), patient_id=patient_id)
    except PYDICOM_VALUE_ERRORS as exc:
        raise MalformedFile(f"an attribute value pydicom cannot read ({type(exc).__name__})") from None
    plan_overview_labels(plan, options.macro, options.reencode_j2k)
    return plan


def plan_regions(plan: Plan, options: DeidOptions) -> None:
    """Blank ``options.regions`` (level-0 pixels) and the overview labels the plan placed
    (``plan.macro_boxes``) in the frames they touch; refuses before anything is written. JPEG 2000
    frames re-encoded (``--reencode-j2k``) are named in the plan's options, for the audit."""
    from ..dicom.redact import plan_frames
    plan.regions = [tuple(r) for r in options.regions]
    plan.frame_edits = plan_frames(plan, list(plan.regions), options.fill, options.reencode_j2k)
    if plan.macro_boxes:
        plan.options["overview_label_blanked"] = {str(i): list(b) for i, b in plan.macro_boxes}
    if plan.frame_edits.reencoded:
        plan.options["reencoded_j2k_frames"] = {str(i): [k + 1 for k in ks] for i, ks in plan.frame_edits.reencoded.items()}


def _frames_of(plan: Plan, inst, ds) -> dict:
    """The blanked frames of an instance, as planned (the header's Extended Offset Table recomputed for them)."""
    from ..dicom.redact import patch_header
    frames = plan.frame_edits.of(inst.index) if plan.frame_edits is not None else {}
    patch_header(ds, inst, frames)
    return frames


def write_all(plan: Plan, folder: str, single_name: str | None) -> list[tuple[Any, str, Any]]:
    """Write every kept instance into ``folder``; returns (instance, path, header) per instance."""
    from ..dicom.apply import build_instance, write_instance
    from ..dicom.labels import generated_label

    data = plan.inventory.container  # dicom.plan.DicomPlanData
    written = []
    by_index = {i.index: i for i in data.source.instances}
    for d in plan.images:
        if d.action == "remove":
            continue
        inst = by_index[d.image.index]
        try:
            ds = build_instance(inst, plan)
        except PYDICOM_VALUE_ERRORS as exc:
            raise MalformedFile(f"instance {inst.index}: a value that cannot be re-encoded ({type(exc).__name__})") from None
        if d.action == "replace":
            inst, ds = generated_label(inst, ds, data, folder)
        frames = _frames_of(plan, inst, ds)
        name = single_name or f"{ds.SOPInstanceUID}.dcm"
        path = os.path.join(folder, name)
        write_instance(ds, inst, path, frames)
        written.append((inst, path, ds))
    if not written:
        raise WsideidError(plan.nothing_kept())
    if single_name and len(written) > 1:  # pragma: no cover - a file holds one instance
        raise WsideidError("one input file cannot give several outputs")
    return written


def _reduced_levels(written) -> list:
    """Every kept VOLUME instance except the full-resolution one of its series, as (instance,
    path, covering instance index or None): reduced levels are small pictures of the whole
    slide (a pen mark, a sticker, a scanned-in label corner show there), read within the
    detectors' pixel budget (``scanimage``); one a smaller scanned level of its series covers
    is skipped and recorded (``wsideid.level_cover``). A series with one level size only has
    it scanned when it is small (``LOW_RES_LEVEL_PIXELS``)."""
    from ..level_cover import LevelSize, covering

    def size(ds) -> tuple[int, int]:
        return (int(ds.get("TotalPixelMatrixColumns", ds.get("Columns", 0)) or 0),
                int(ds.get("TotalPixelMatrixRows", ds.get("Rows", 0)) or 0))
    series: dict[str, list] = {}
    for inst, path, ds in written:
        if inst.role == "level":
            series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((size(ds), inst, path))
    out = []
    for uid, levels in series.items():
        full = max(w * h for (w, h), _, _ in levels)
        reduced = [(wh, inst, path) for wh, inst, path in levels if wh[0] * wh[1] < full]
        if not reduced and full <= LOW_RES_LEVEL_PIXELS:  # a lone small level: the whole slide, scanned
            reduced = levels
        cover = covering([LevelSize(inst.index, w, h, uid) for (w, h), inst, _ in reduced])
        out += [(inst, path, cover.get(inst.index)) for _, inst, path in reduced]
    return out


def _verify_output(src, output: str | os.PathLike, options: DeidOptions) -> VerifyReport:
    from ..dicom.apply import build_instance
    from ..dicom.source import check_no_special_files, read_instance
    from ..dicom.verify import new_report, verify_dicom

    plan = plan_source(src, options)
    plan_regions(plan, options)
    data = plan.inventory.container
    out = os.fspath(output)
    if os.path.isdir(out):
        check_no_special_files(out)  # each file is read: a FIFO there hung `wsideid verify`
    files = [os.path.join(out, n) for n in sorted(os.listdir(out))] if os.path.isdir(out) else [out]
    by_uid = {}
    for i, f in enumerate(files):
        try:
            by_uid[str(read_instance(f, i).ds.get("SOPInstanceUID", ""))] = f
        except WsideidError:
            continue
    written = []
    rep = new_report()
    for d in plan.images:
        if d.action == "remove":
            continue
        inst = next(i for i in src.instances if i.index == d.image.index)
        ds = build_instance(inst, plan)
        _frames_of(plan, inst, ds)
        path = by_uid.get(str(ds.get("SOPInstanceUID", "")))
        if path is None:
            rep.record(Check.ROLES, False, f"instance {inst.index} not found in the output (other secret?)",
                       part="instances")
            return rep
        written.append((inst, path, ds))
    rep.record(Check.ROLES, True, f"{len(written)} matched by keyed SOP Instance UID", part="instances")
    return verify_dicom(plan, written, full=True, identifiers=options.identifiers, report=rep)


class DicomDriver:
    """DICOM WSI: a Part 10 file, or one slide of a folder of instances."""

    name = "dicom"
    title = "DICOM WSI"
    container = Container.DICOM
    extensions = (".dcm",)  # a folder input gives a folder
    reads_folders = True
    supports_in_place = False
    openslide_vendor = None
    phi_carriers = ("DICOM WSI attributes are covered by `formats/dicom.toml` and `docs/dicom.md`.",)

    def __repr__(self) -> str:
        return "DicomDriver()"

    @property
    def profile(self) -> str:
        return profile_file(self.name)

    def session(self):
        """pydicom's own warnings silenced for the run (its findings are ours to report)."""
        from ..dicom.source import quiet_pydicom
        return quiet_pydicom()

    def claims(self, path: str) -> bool:
        return is_dicom_input(path)

    def open(self, path: str, series: str | None = None) -> Opened:
        """One slide of the input: a folder holding several is split by content and ``series``
        (its pyramid's Series Instance UID) picks one (``dicom.slides``); its files alone are the input."""
        from ..dicom.slides import load_slide
        with self.session():
            src = load_slide(path, series)
        return Opened(self, path, src, [i.path for i in src.instances])

    def plan(self, opened: Opened, options: DeidOptions) -> Plan:
        """Profile, keyed UIDs, the frames regions blank; ``--macro blank-label`` keeps an overview
        whose label can be placed and blanked losslessly (``dicom.overview``), else removes it and says why."""
        plan = plan_source(opened.container, options)
        plan_regions(plan, options)
        return plan

    def before_records(self, plan: Plan, review: str) -> None:
        """The UID and patient pseudonym maps, in the review folder, before the audit."""
        from ..pseudomaps import patient_pairs, record_maps
        record_maps(review, plan.inventory.container.uids.mapped, patient_pairs(plan))

    def write(self, opened: Opened, plan: Plan, scratch: str, final_name: str, options: DeidOptions,
              on_recipe=None) -> Written:
        """Every kept instance written; the plan's stream check is done (``rule_edits``), so the
        residual scan's early reads (``residual_early``) start now, beside the copy
        (``pipeline._WriteEvents.checked``)."""
        checked = getattr(on_recipe, "checked", None)
        if checked is not None:
            checked()
        src = opened.container
        os.mkdir(scratch)
        inner = os.path.join(scratch, "slide")
        os.mkdir(inner)
        written = write_all(plan, inner, None if src.is_folder else final_name)
        return Written(inner if src.is_folder else written[0][1], written)

    def verify(self, opened: Opened, plan: Plan, written: Written, options: DeidOptions) -> VerifyReport:
        from ..dicom.verify import verify_dicom
        return verify_dicom(plan, written.state, full=options.verify == VerifyMode.FULL,
                            identifiers=options.identifiers)

    def verify_existing(self, opened: Opened, output: str, options: DeidOptions) -> VerifyReport:
        with self.session():
            return _verify_output(opened.container, output, options)

    def source_images(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """The label and overview being removed (an overview's codes decoded at plan time, to
        place its label, are handed over: the same pixels are not decoded twice)."""
        by_index = {i.index: i for i in opened.container.instances}
        decoded = plan.inventory.container.overview_barcodes
        return [_ref(by_index[d.image.index].path, d.image.role, d.image.index, decoded=decoded.get(d.image.index))
                for d in plan.images if d.image.role in ("label", "overview")]

    def residual_images(self, plan: Plan, written: Written) -> list[ImageRef]:
        """Every kept instance that is not the full-resolution level (thumbnail, reduced
        levels, a generated or kept label, overview)."""
        targets = [(inst, path, None) for inst, path, _ in written.state if inst.role != "level"]
        return [_ref(path, inst.role, inst.index, cover) for inst, path, cover in targets + _reduced_levels(written.state)]

    def residual_early(self, opened: Opened, plan: Plan) -> list[ImageRef]:
        """The residual images whose output pixels are the source's, read from the source while
        the output is written (issue 14, DICOM round: they were all read from the output after
        verification, 0.7-1.9 s every run waited for); the others from the output once verified.

        Which instances are read is decided as ``residual_images`` decides it, from the headers
        the writer writes (``build_instance`` of the frozen plan: the same sizes, series and
        roles, so the same reduced levels and level cover). One is read early only when its
        output reads as its source (``_reads_as_source``): no frame edited (no region, no
        stream-rule rewrite), its pixel data copied byte for byte and compared whole by
        verification (image-data compares every frame up to ``FULL_COMPARE_BYTES`` whatever the
        mode), and the same header values that say how ``scanimage`` assembles
        its frames. A generated label is a new instance: read from the output.

        The headers are built here once more than the write builds them (about a millisecond
        for a TILED_FULL instance); a slide with long per-frame sequences (TILED_SPARSE, where
        building a header walks every frame's items) is read late instead, as before."""
        from ..dicom.apply import build_instance
        by_index = {i.index: i for i in opened.container.instances}
        if any(len(i.ds.get("PerFrameFunctionalGroupsSequence", None) or ()) > EARLY_MAX_FRAME_ITEMS
               for i in by_index.values()):
            return []
        kept = []
        for d in plan.images:
            if d.action in ("remove", "replace") or d.image.index not in by_index:
                continue
            inst = by_index[d.image.index]
            try:
                kept.append((inst, inst.path, build_instance(inst, plan)))
            except PYDICOM_VALUE_ERRORS:
                return []  # the write refuses it, with its own message
        targets = [(inst, path, None) for inst, path, _ in kept if inst.role != "level"] + _reduced_levels(kept)
        intended = {inst.index: ds for inst, _, ds in kept}
        return [_ref(inst.path, inst.role, inst.index, cover) for inst, _, cover in targets
                if _reads_as_source(plan, inst, intended[inst.index])]

    def label_images(self, opened: Opened) -> list[ImageRef]:
        """``wsideid scan``: label, overview and thumbnail instances (and a lone small level,
        such as a LABEL-less slide's only low-resolution image)."""
        insts = opened.container.instances
        targets = [i for i in insts if i.role != "level"] or list(insts)[:1]
        return [_ref(i.path, i.role, i.index) for i in targets]

    def removed_preview(self, input_path: str, plan: Plan, index: int):
        """A removed instance of the source, for the QC page."""
        path = {i.index: i.path for i in plan.inventory.container.source.instances}[index]
        return _read(path, index)

    def kept_previews(self, output: str, plan: Plan, scans: list) -> list[ImageRef]:
        """The scanned kept instances, read from the published output: output instances are
        named by their new UIDs, so each scan is matched to its file by role and size
        (``dicom.output_match``)."""
        from ..dicom.output_match import kept_files
        files = kept_files(output, scans)
        return [_ref(files[sc.index], sc.role, sc.index) for sc in scans if sc.index in files]

    def companion_names(self, stem: str) -> list[str]:
        return []

    def start_hashing(self, opened: Opened, options: DeidOptions) -> "_DicomHashes":
        return _DicomHashes(opened, hash_algorithm(options), options.hash_input)

    def output_name(self, input_path: str, stem: str) -> str:
        """A folder for a folder, ``<stem>.dcm`` for a single file; the stem is never the input's own name
        unless ``--keep-name`` passed it (see wsideid.naming)."""
        return stem if os.path.isdir(input_path) else f"{stem}.dcm"


EARLY_MAX_FRAME_ITEMS = 256  # per-frame items above which ``residual_early`` leaves a slide to the late reads

# What ``scanimage.instance_image`` reads from a header to assemble an instance's frames.
_GEOMETRY = ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation",
             "TotalPixelMatrixColumns", "TotalPixelMatrixRows", "PixelRepresentation", "PlanarConfiguration")


def _reads_as_source(plan: Plan, inst, ds) -> bool:
    """The output instance reads, for the detectors, as ``inst`` does: no frame edited, its pixel
    data copied whole and compared whole by verification's image-data check whatever the
    verification mode (at most ``FULL_COMPARE_BYTES``), and the same transfer syntax and frame
    geometry in the header written (``ds``) as in the source's."""
    from ..dicom.verify import FULL_COMPARE_BYTES
    if inst.span is None or (plan.frame_edits is not None and plan.frame_edits.of(inst.index)):
        return False
    if inst.span.size > FULL_COMPARE_BYTES:
        return False  # sampled by image-data in the default mode: the output is read itself
    src_ts = str(inst.ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(inst.ds, "file_meta") else None
    out_ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else None
    if src_ts is None or src_ts != out_ts:
        return False
    return all(str(inst.ds.get(k, "")) == str(ds.get(k, "")) for k in _GEOMETRY)


def _read(path: str, index: int):
    from ..dicom.scanimage import instance_image
    return instance_image(path, index)


def _ref(path: str, role: str, index: int, covered_by: int | None = None, decoded=None) -> ImageRef:
    return ImageRef(role, index, lambda: _read(path, index), covered_by, decoded)


class _DicomHashes:
    """Every written instance hashed with the run's algorithm (``hashing.py``: BLAKE3 by default,
    ``--hash sha256|blake3|none``) in a thread started once the files are stamped, beside
    verification (``hashing.FilesHasher``); the inputs only when asked for (``--hash-input``, for
    the lab record: a second pass over the input, as for the TIFF family), in a thread from the
    start. Until issue 14's DICOM round both were hashed at publish time, after verification."""

    def __init__(self, opened: Opened, algorithm: HashAlgorithm, hash_input: bool = False):
        from ..hashing import FilesHasher
        self.opened, self.algorithm = opened, algorithm
        self.algorithm_name = algorithm.value
        self.enabled = algorithm is not HashAlgorithm.NONE
        self.stamps = None  # taken once written (``written``)
        self.inputs = None
        self.outputs = None
        if self.enabled and hash_input:
            insts = opened.container.instances
            self.inputs = (FilesHasher([i.path for i in insts], algorithm), [i.index for i in insts])
            self.inputs[0].start()

    def on_recipe(self, recipe) -> None:
        """Instances are written whole; nothing is hashed while writing."""

    def written(self, written: Written) -> None:
        """Every written file stamped before verification reads it (``hashing.PartStamps``), then
        hashed from disk beside verification."""
        from ..hashing import FilesHasher, PartStamps
        if not self.enabled:
            return
        self.stamps = PartStamps(written.ready)
        self.outputs = (FilesHasher([path for _, path, _ in written.state], self.algorithm),
                        [inst.index for inst, _, _ in written.state])
        self.outputs[0].start()

    def result(self, written: Written, report: VerifyReport) -> dict[str, str]:
        hashes: dict[str, str] = {}
        if self.enabled:
            for label, got in (("input", self.inputs), ("output", self.outputs)):
                if got is not None:
                    hasher, indices = got
                    hashes.update({f"{label}[{i}]": d for i, d in zip(indices, hasher.results(f"{label}s"))})
            seconds = self.outputs[0].seconds if self.outputs is not None else 0.0
            record_unchanged(report, self.stamps, self.algorithm.value, seconds)
        return hashes

    def unchanged(self, written: Written) -> str | None:
        return self.stamps.unchanged() if self.enabled and self.stamps is not None else None
