"""MIRAX through the stages: open, inventory, plan, write, verify, detect, publish, audit.

The output is two names in OUTDIR, ``<stem>.mrxs`` and the folder
``<stem>/``, built together in one temp folder and published folder first
(``renameat2`` without replace), then the .mrxs file (``link``): the .mrxs
file is what readers open, so it appears last, and a failure in between
removes the folder this run just published. Both names are checked free
before anything is written.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ..errors import VerificationFailed, WsideidError
from ..model import REPLACE, Field, Plan, ValueKind
from ..profiles import PlanOptions, load_profile, make_plan
from .slide import MrxsSlide, inventory, open_mrxs

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


def plan_slide(slide: MrxsSlide, options: Any) -> Plan:
    inv = inventory(slide)
    extra = _mrxs_file_field(slide)
    if extra is not None:
        inv.fields.append(extra)
    profile = load_profile("mirax", getattr(options, "profile", None))
    plan = make_plan(inv, profile, PlanOptions(options.dates, options.new_id, options.strict, options.keep_macro,
                                               options.label))
    for d in plan.fields:
        if d.field.key == "general:SLIDE_ID":
            d.action, d.new_value, d.rule = REPLACE, keyed_slide_id(options, slide.slide_id), "general.SLIDE_ID (keyed)"
    plan.regions = [tuple(r) for r in (getattr(options, "regions", None) or [])]
    for d in plan.images:
        if plan.regions and d.image.role == "thumbnail" and d.action == "keep":
            # where the preview lies on the slide is not recorded: a region may show in it
            d.action, d.rule = "remove", "region blanking: the preview's placement is unknown, removed"
        if d.action == "replace" and not options.new_id:
            raise WsideidError("--label replace needs a research ID (--new-id)")
        if d.action == "blank-label":
            d.action, d.rule = "remove", "--macro blank-label is not available for MIRAX: removed"
    return plan


def keyed_slide_id(options: Any, old: str) -> str:
    """The same secret and slide give the same id; 32 hex digits like the scanner's."""
    return options.secret.digest("mrxs-slide-id", old.encode()).hex()[:32]


def inspect(path: str, options: Any) -> Plan:
    return plan_slide(open_mrxs(path), options)


def _tree_sha256(path: str) -> str | None:
    from ..batch.records import tree_sha256
    return tree_sha256(path)


def deidentify(input_path: str, outdir: str, options: Any):
    from ..naming import check_review_dir, name_for, review_dir
    from ..pipeline import DeidResult, check_free, clean_stale_temps, record_and_audit, temp_name
    from ..safefs import claim, publish_dir, publish_file, remove_tree
    from .verify import verify
    from .write import write
    t0 = time.perf_counter()
    if not os.path.isdir(outdir):
        raise WsideidError("output folder does not exist")
    if options.in_place:
        raise WsideidError("--in-place is not available for MIRAX (its data files are rewritten)")
    review = review_dir(outdir, options.review_dir)
    check_review_dir(outdir, review)
    slide = open_mrxs(input_path)
    files = [slide.path] + [os.path.join(slide.folder, n) for n in sorted(os.listdir(slide.folder))]
    before = {p: os.stat(p).st_mtime_ns for p in files}
    name = name_for(input_path, files, options)
    final = os.path.join(outdir, name.stem + ".mrxs")
    final_folder = os.path.join(outdir, name.stem)
    if os.path.abspath(final_folder) == slide.folder:
        raise WsideidError("the output would overwrite the input (use another output folder)")
    check_free(final, options.overwrite)
    check_free(final_folder, options.overwrite)
    plan = plan_slide(slide, options)
    timings = {"plan": time.perf_counter() - t0}
    clean_stale_temps(outdir)
    tmp = os.path.join(outdir, temp_name())
    os.mkdir(tmp)
    try:
        t1 = time.perf_counter()
        sid = next(d.new_value for d in plan.fields if d.field.key == "general:SLIDE_ID")
        written = write(plan, os.path.join(tmp, name.stem + ".mrxs"), sid, options.fill, options.new_id)
        timings["write"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        report = verify(plan, written, slide, options.verify == "full", options.identifiers or [], options.fill)
        timings["verify"] = time.perf_counter() - t2
        if any(os.stat(p).st_mtime_ns != m for p, m in before.items()):
            raise WsideidError("the input changed while it was being processed; nothing was published")
        if not report.ok:
            fails = "; ".join([f"{c.name}: {c.detail}" for c in report.checks if not c.ok][:3])
            raise VerificationFailed(f"output failed verification, nothing published ({fails})")
        scans, status = _detect(slide, plan, written, options)
        if status == "flagged":
            from ..naming import make_review_dir
            make_review_dir(review, "flagged")
            final = os.path.join(review, "flagged", os.path.basename(final))
            final_folder = os.path.splitext(final)[0]
        hashes = {}
        if options.hash_outputs:
            hashes = {"output": _tree_sha256(written.mrxs) or ""}  # the .mrxs file and its folder's files
        timings["total"] = time.perf_counter() - t0
        result = DeidResult(input_path, final, "mirax", plan, report, status, timings=timings, sha256=hashes,
                            scans=scans)
        with claim(os.path.dirname(final), os.path.basename(final)):
            check_free(final, options.overwrite)
            check_free(final_folder, options.overwrite)
            result.audit_path = record_and_audit(result, options, name, review)
            replaced = publish_dir(written.folder, final_folder, options.overwrite, os.path.join(tmp, "trash"))
            try:
                replaced = publish_file(written.mrxs, final, options.overwrite) or replaced
            except BaseException:
                remove_tree(final_folder)
                raise
            result.replaced = replaced
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _detect(slide: MrxsSlide, plan: Plan, written, options: Any):
    """Detectors on every kept non-level image as it leaves (the preview, a generated label),
    and, with --detect all, on the removed label and macro."""
    import io

    from PIL import Image

    from ..scanning import scan_images
    if options.detect == "off":
        return [], "published"
    ids, ocr = options.identifiers or [], options.ocr
    out_records = {slide.nonhier.index(nh): rec for nh, rec in written.nonhier}

    def source_image(_path: str, k: int):
        return Image.open(io.BytesIO(slide.read(slide.nonhier[k].record))).convert("RGB")

    def output_image(_path: str, k: int):
        rec = out_records[k]
        with open(os.path.join(written.folder, f"Data{rec.fileno:04d}.dat"), "rb") as fh:
            fh.seek(rec.offset)
            return Image.open(io.BytesIO(fh.read(rec.length))).convert("RGB")
    scans = []
    if options.detect == "all":
        for k, nh in enumerate(slide.nonhier):
            if nh.role in ("label", "macro"):
                scans += scan_images(slide.path, [(nh.role, k)], "source", ids, ocr, reader=source_image)
    for k, nh in enumerate(slide.nonhier):
        if k in out_records and nh.role in ("thumbnail", "label", "macro"):
            found = scan_images(written.mrxs, [(nh.role, k)], "output", ids, ocr, reader=output_image)
            for sc in found:  # the research ID on a generated label is what it is meant to show
                if sc.result is not None and options.new_id:
                    sc.result.findings = [f for f in sc.result.findings if f.value.strip() != options.new_id]
            scans += found
    flagged = any(s.stage == "output" and (s.has_phi or s.error) for s in scans)
    return scans, "flagged" if flagged else "published"
