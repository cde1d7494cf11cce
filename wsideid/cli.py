"""Command-line front end: parses arguments, calls the API, prints results.

It holds no de-identification logic. Every anticipated failure is a
WsideidError and becomes one line on stderr with a non-zero exit; anything
else is reported as an internal error in one line too (set
WSIDEID_DEBUG=1 for the traceback), never a raw traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

from . import __version__
from .errors import WsideidError

# OpenBLAS starts a thread per core when numpy is imported, and its start cost a `wsideid scan`
# process 0.04-0.07 s of CPU on a 2-core machine (`import numpy`: 0.12-0.15 s, 0.07-0.08 with
# one thread; issue 14: <= 0.6 CPU s a label). Nothing in wsideid multiplies floating-point
# matrices (the one matmul, tiff/codecends.py, is on integers, which numpy does without
# BLAS), so no result changes; the PP-OCR worker (onnxruntime, its own kernels) inherits it.
# Set before any module imports numpy; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_VERIFY, EXIT_INTERNAL = 0, 1, 2, 3, 70


def _secret(args) -> Any:
    """The run's secret, loaded once per command (random when none was given)."""
    if getattr(args, "_secret", None) is None:
        from .keys import load_secret
        args._secret = load_secret(getattr(args, "secret_file", None), allow_random=True)
    return args._secret


def _warn_if_no_secret(source: str | None) -> None:
    """After outputs were written without a secret: one warning line on stderr (a failed
    run keeps its one-line error), because a random key named, dated and UIDed them."""
    from .keys import RANDOM_SOURCE, warn_no_secret
    if source == RANDOM_SOURCE:
        warn_no_secret()


def _date_options(args) -> Any:
    from .dates import make_policy
    subject = getattr(args, "subject", None)
    source = getattr(args, "input", None) or getattr(args, "slide", None) or getattr(args, "original", None)
    if args.dates == "shift" and not subject and source:
        from .dicom import is_dicom_input
        if is_dicom_input(source):  # with no --subject, a DICOM input's PatientID is the subject (issue 15)
            from .dicom.slides import slide_files
            from .pseudomaps import dicom_patient_id
            # the slide's own instances (a folder may hold several slides), each header checked
            # first as on open (a deflated one inflated 2 GB in memory before any check ran)
            subject = dicom_patient_id(source, slide_files(source, getattr(args, "series", None)))
    return make_policy(args.dates, _secret(args), subject)


def _deid_options(args):
    from .pipeline import DeidOptions
    return DeidOptions(dates=_date_options(args), profile=args.profile, new_id=getattr(args, "new_id", None),
                       strict=getattr(args, "strict", False), keep_macro=getattr(args, "keep_macro", False),
                       verify=getattr(args, "verify", "sample"), overwrite=getattr(args, "overwrite", False),
                       hash_outputs=not getattr(args, "no_hash", False), hash=getattr(args, "hash", "blake3"),
                       hash_input=getattr(args, "hash_input", False),
                       audit_dir=getattr(args, "audit_dir", None), detect=getattr(args, "detect", None) or "residual",
                       ocr=not getattr(args, "no_ocr", False), identifiers=getattr(args, "identifier", None) or [],
                       review_dir=getattr(args, "review_dir", None), dicom=_dicom_options(args),
                       regions=_regions(args), fill=getattr(args, "fill", "white"), macro=getattr(args, "macro", None),
                       reencode_j2k=getattr(args, "reencode_j2k", False),
                       in_place=getattr(args, "in_place", False), label=getattr(args, "label", None),
                       keep_name=getattr(args, "keep_name", False), secret=_secret(args),
                       subject=getattr(args, "subject", None), naming=getattr(args, "_naming", None),
                       series=getattr(args, "series", None))


def _regions(args) -> list:
    from .regions import parse_region
    return [parse_region(r) for r in (getattr(args, "region", None) or [])]


def _dicom_options(args):
    from .dicom import is_dicom_input
    chosen = tuple(getattr(args, "dicom_option", None) or ())
    source = getattr(args, "input", None) or getattr(args, "slide", None) or getattr(args, "original", None)
    if not (chosen or getattr(args, "to_dicom", False) or (source and is_dicom_input(source))):
        return None  # TIFF input: skip importing pydicom
    from .dicom.plan import DicomOptions
    return DicomOptions(options=tuple(o for o in chosen if o != "generated-label"),
                        label="generate" if "generated-label" in chosen else "remove",
                        to_dicom=getattr(args, "to_dicom", False), secret=_secret(args), mpp=getattr(args, "mpp", None))


def _print(obj: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        json.dump(obj, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text(obj))


def cmd_inspect(args) -> int:
    from .pipeline import inspect
    plan = inspect(args.slide, _deid_options(args))
    inv = plan.inventory
    data = {
        "format": inv.format,
        "notes": inv.notes,
        "images": [{"index": d.image.index, "role": d.image.role, "width": d.image.width,
                    "height": d.image.height, "compression": d.image.compression,
                    "tiles": d.image.tile_count, "action": d.action, "rule": d.rule} for d in plan.images],
        "fields": [{"path": d.field.path, "value": d.field.value, "action": d.action,
                    "new_value": d.new_value if d.action not in ("keep", "remove") else None,
                    "rule": d.rule, "unknown": d.unknown} for d in plan.fields],
        "profile": {"name": plan.profile_name, "sha256": plan.profile_sha256},
    }

    def text(d):
        lines = [f"format: {d['format']}", *[f"  {n}" for n in d["notes"]], "images:"]
        for im in d["images"]:
            lines.append(f"  [{im['index']}] {im['role']:<9} {im['width']}x{im['height']} {im['compression']}"
                         f" ({im['tiles']} tiles/strips) -> {im['action']}"
                         + (f"  [{im['rule']}]" if im["rule"].startswith("unknown image") else ""))
        lines.append(f"metadata ({d['profile']['name']}):")
        for f in d["fields"]:
            val = str(f["value"])
            val = val if len(val) <= 60 else val[:57] + "..."
            new = f" -> {f['new_value']!s:.40}" if f["new_value"] is not None else ""
            flag = "  [unknown]" if f["unknown"] else ""
            lines.append(f"  {f['action']:<8} {f['path']} = {val!r}{new}{flag}")
        return "\n".join(lines) + "\n"
    _print(data, args.json, text)
    return EXIT_OK


def cmd_deid(args) -> int:
    from .pipeline import DeidOptions, check_name_options
    check_name_options(DeidOptions(new_id=args.new_id, keep_name=getattr(args, "keep_name", False)))
    if not args.output and not getattr(args, "in_place", False):
        raise WsideidError("deid needs -o OUTDIR (or --in-place to rewrite the input itself)")
    if getattr(args, "from_dicomweb", None):
        if args.output:
            _make_outdir(args.output, getattr(args, "review_dir", None))
        from .dicomweb_cli import deid_from_dicomweb
        return deid_from_dicomweb(args, _deid_one, _deid_folder)
    if not args.input:
        raise WsideidError("deid needs an INPUT (or --from-dicomweb URL --study UID)")
    if os.path.isdir(args.input):  # a file is never a slide folder: the batch modules are not imported for it
        from .batch.folder import is_slide_folder
        if is_slide_folder(args.input, getattr(args, "series", None)):
            return _deid_folder(args)
    if args.output and not getattr(args, "in_place", False) and os.path.exists(args.input):
        _make_outdir(args.output, getattr(args, "review_dir", None))
    return _deid_one(args)


def _deid_one(args) -> int:
    from .pipeline import deidentify, plan_summary
    res = deidentify(args.input, args.output, _deid_options(args))
    if res.replaced:
        print(f"wsideid: --overwrite replaced the existing {os.path.basename(res.output or '')}", file=sys.stderr)
    _warn_if_no_secret(_secret(args).source)
    data = {"status": res.status, "format": res.format, "output": res.output, "audit": res.audit_path,
            "named_by": res.named_by, "replaced_existing": res.replaced,
            "summary": plan_summary(res.plan), "timings_s": {k: round(v, 3) for k, v in res.timings.items()},
            "checks": res.report.to_records()}

    data["detectors"] = [sc.to_dict(include_values=False) for sc in res.scans]
    data["notes"] = list(res.plan.inventory.notes)
    for note in data["notes"]:  # a DICOM folder's instances that belong to no slide: reported, not written
        if note.startswith("not written"):
            print(f"wsideid: {note}", file=sys.stderr)

    def text(d):
        s = d["summary"]
        acts = ", ".join(f"{v} {k}" for k, v in sorted(s["actions"].items()))
        imgs = ", ".join(f"{k} {v}" for k, v in s["images"].items())
        head = ("published" if d["status"] == "published" else
                "FLAGGED for review (residual PHI found on a kept image), written to")
        flags = [f"{x['stage']} {x['role']}: {', '.join(sorted(x.get('phi_categories', {}))) or x.get('error', 'clean')}"
                 for x in d["detectors"]]
        return (f"{head} {d['output']} ({d['format']})\n  fields: {acts}; unknown removed: {s['unknown']}\n"
                + (f"  detectors: {'; '.join(flags)}\n" if flags else "") +
                f"  images: {imgs}\n  verified: {_checks_line(d['checks'])}"
                f" in {d['timings_s'].get('total', 0):.2f}s\n  audit: {d['audit']}\n"
                + (f"  named by {d['named_by']}; name mapping and lab record in the review folder\n"
                   if d["named_by"] else ""))
    if getattr(args, "push", None) and res.status == "published":  # verified and clean: sent (issue 15)
        from .dicomweb_cli import push_after
        data["pushed"] = push_after(args, res.output)
    _print(data, args.json, text)
    return EXIT_OK if res.status == "published" else EXIT_FINDINGS


def _make_outdir(path: str, review_dir: str | None = None) -> None:
    """-o OUTDIR is created when missing (with its parents), as users expect; --mkdir is a no-op kept
    for old scripts. Only after the input was found, so a typo does not leave empty folders behind.
    A --review-dir given is made first (owner-only; every publish writes to it), so an unusable one
    stops the run before an empty OUTDIR is left behind."""
    from .naming import check_review_dir
    from .safefs import make_folders
    if review_dir:
        check_review_dir(path, review_dir)  # before either is made: a review folder inside OUTDIR is refused
    first = [(review_dir, 0o700, "review folder")] if review_dir else []
    make_folders(*first, (path, 0o777, "output folder"))


def _deid_folder(args) -> int:
    """``deid FOLDER -o OUT`` on a folder of slides: a batch with generated research IDs (see
    wsideid.batch.folder); the options a manifest row cannot carry are refused, not ignored."""
    from .batch.folder import FolderKind, FolderOptions, folder_kind, one_id_refusal, run_folder
    a = lambda name, default=None: getattr(args, name, default)  # noqa: E731 - redact shares this path
    if a("new_id") and folder_kind(args.input) is FolderKind.DICOM_SLIDES:
        raise WsideidError(one_id_refusal(args.input))
    unsupported = [flag for flag, given in [
        ("--in-place", a("in_place")), ("--new-id", a("new_id")), ("--keep-name", a("keep_name")),
        ("--region", a("region")), ("--series", a("series")), ("--profile", a("profile")), ("--strict", a("strict")),
        ("--to-dicom", a("to_dicom")), ("--dicom-option", a("dicom_option")), ("--audit-dir", a("audit_dir")),
        ("--no-hash", a("no_hash")), ("--reencode-j2k", a("reencode_j2k")), ("--mpp", a("mpp"))] if given]
    if unsupported:
        raise WsideidError(f"{', '.join(unsupported)} cannot be used on a folder of slides"
                           " (write a manifest and use `wsideid run`)")
    fo = FolderOptions(
        review_dir=a("review_dir"), dates=a("dates", "remove"), secret_file=a("secret_file"), subject=a("subject"),
        identifiers=list(a("identifier") or []), keep_macro=bool(a("keep_macro")), macro=a("macro"),
        label=a("label"), detect=a("detect") or "all", ocr=not a("no_ocr"), verify=a("verify", "sample"),
        overwrite=bool(a("overwrite")), jobs=max(1, a("jobs", 1)), progress=not a("json"), origin=a("_origin"))
    from .keys import load_secret
    load_secret(fo.secret_file)  # a weak or unreadable secret is refused before any folder is made
    _make_outdir(args.output, getattr(args, "review_dir", None))
    res, ignored = run_folder(args.input, args.output, fo)
    _warn_if_no_secret(res.secret_source)
    for name in res.overwrote:
        print(f"wsideid: --overwrite replaced an earlier output: {name}", file=sys.stderr)
    if a("push"):  # every verified output, after the batch, as `run --push` does (it was silently ignored)
        from .dicomweb_cli import push_batch
        push_batch(args, res)
    return _print_batch(args, res, ignored)


def cmd_redact(args) -> int:
    if not args.region:
        raise WsideidError("redact needs at least one --region X,Y,W,H")
    return cmd_deid(args)


def cmd_scan(args) -> int:
    from .slide_scan import scan_paths
    results, errors = scan_paths(args.paths, args.identifier or [], ocr=not args.no_ocr)
    data = {"results": results, "errors": errors}

    def text(d):
        lines = []
        for r in d["results"]:
            lines.append(f"{r['path']}: {'PHI FOUND' if r['has_phi'] else 'clean'}")
            for im in r["images"]:
                for f in im.get("findings", []):
                    cats = ",".join(f.get("phi", [])) or "-"
                    lines.append(f"  [{im['role']}] {f['kind']:<7} {f.get('symbology') or '':<10} {f.get('value', '')!r} phi={cats}")
                if im.get("error"):
                    lines.append(f"  [{im['role']}] not scanned: {im['error']}")
        for e in d["errors"]:
            lines.append(f"{e['path']}: error: {e['error']}")
        return "\n".join(lines) + "\n"
    _print(data, args.json, text)
    if errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if any(r["has_phi"] for r in results) else EXIT_OK


_STATUS_LABEL = {"passed": "ok", "failed": "FAIL", "not-applicable": "n/a", "not-run": "skip"}


def _checks_line(checks: list[dict]) -> str:
    """``12/12 checks passed (1 not applicable)``: the verification on one line."""
    passed = sum(c["status"] == "passed" for c in checks)
    na = sum(c["status"] == "not-applicable" for c in checks)
    return f"{passed}/{len(checks) - na} checks passed" + (f" ({na} not applicable)" if na else "")


def cmd_verify(args) -> int:
    from .pipeline import verify_output
    rep = verify_output(args.original, args.output_file, _deid_options(args))
    data = {"ok": rep.ok, "checks": rep.to_records()}

    def text(d):
        return "\n".join(f"  {_STATUS_LABEL[c['status']]:<4} {c['check']}: {c['detail']}" for c in d["checks"]) + \
            f"\n{'verified' if d['ok'] else 'NOT verified'}\n"
    _print(data, args.json, text)
    return EXIT_OK if rep.ok else EXIT_VERIFY


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args.workdir, as_json=args.json)


def _add_deid_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", metavar="F", help="TOML profile that overrides the shipped one for the format")
    p.add_argument("--dates", choices=["remove", "year", "shift"], default="remove",
                   help="date policy: remove (default), year (keep the year only), shift (keyed per-subject offset)")
    p.add_argument("--secret-file", metavar="F",
                   help="secret key for date shifts, UIDs and output pseudonyms (else $WSIDEID_SECRET; without one a"
                        " random key is used and a warning printed: nothing links across runs)")
    p.add_argument("--subject", metavar="ID", help="patient key: slides of one subject get one date offset")
    p.add_argument("--new-id", metavar="ID",
                   help="research ID: the output's name and the replacement for identifiers (1-64 letters, digits,"
                        " '.', '_', '-'; an empty or unsafe ID is refused). Without it the output is named by a keyed"
                        " pseudonym, WSI-<16 hex>, never by the input's name")
    p.add_argument("--series", metavar="UID",
                   help="DICOM folder holding several slides: the one whose VOLUME series has this Series Instance UID"
                        " or series-<12 hex> token (messages name slides by token) (without it, `deid` gives each"
                        " slide its own output)")
    p.add_argument("--strict", action="store_true", help="refuse the slide if it holds anything the profile does not know")
    p.add_argument("--keep-macro", action="store_true", help="keep the macro/overview image (scanned for residual PHI)")
    p.add_argument("--macro", choices=["remove", "keep", "blank-label"],
                   help="macro/overview: remove (profile default), keep, or keep with its label area blanked losslessly")
    p.add_argument("--region", action="append", metavar="X,Y,W,H",
                   help="blank this level-0 region on every level and the thumbnail, losslessly (JPEG only); repeatable")
    p.add_argument("--fill", choices=["white", "black", "gray"], default="white",
                   help="colour of blanked regions (default white)")
    _add_reencode_j2k(p)
    p.add_argument("--label", choices=["remove", "replace"],
                   help="label image: remove (default) or replace with a generated one showing --new-id")
    p.add_argument("--dicom-option", action="append", metavar="OPT",
                   help="DICOM: a PS3.15 Annex E option (retain-safe-private, retain-uids, retain-device-identity,"
                        " retain-institution-identity, retain-patient-characteristics,"
                        " retain-longitudinal-full-dates, retain-longitudinal-modified-dates, clean-descriptors,"
                        " clean-structured-content, clean-pixel-data), a combination the profile names"
                        " (basic, research, internal; see docs/dicom.md) or generated-label (a new LABEL"
                        " instance showing --new-id); repeatable")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_naming(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-name", action="store_true",
                   help="name the output after the input (its base name, the extension from the format), only if"
                        " the PHI text classifier finds nothing in that name; else refused (exit 2)")
    p.add_argument("--review-dir", metavar="DIR",
                   help="lab-side folder, outside OUTDIR: flagged outputs, name-map.csv (input path -> output name),"
                        " records/<output>.lab.json (input path, its hash with --hash-input, hashed key names); default OUTDIR-review")


DESCRIPTION = ("De-identify whole-slide images: SVS, NDPI, DICOM WSI, tiled TIFF, Philips, BIF, SCN, MRXS,"
               " OME-TIFF, QPTIFF. `wsideid COMMAND --help` explains each command's options.")
EXIT_CODES = """exit codes:
  0    done: every output published (verified, no finding)
  1    findings: a slide was flagged for review (written to the review folder), `scan` found PHI,
       `map lookup` found nothing
  2    an error (bad input, option or folder), or a batch row that failed or was refused
  3    an output failed verification; nothing was published
  70   internal error (a bug: set WSIDEID_DEBUG=1 and report it)
  130  interrupted (Ctrl-C); rerun the same command to finish a batch"""


def _add_scan(sub) -> None:
    p = sub.add_parser("scan", help="look for barcodes and PHI text on slides' label/macro/thumbnail and on label images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="slide files or label/macro images (PNG, JPEG)")
    p.add_argument("--identifier", action="append", metavar="TEXT", help="known identifier to match fuzzily; repeatable")
    p.add_argument("--no-ocr", action="store_true", help="barcodes only (faster; misses printed and handwritten text)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    p.set_defaults(func=cmd_scan)


# Commands whose process is built for one parser only (``build_parser(only=...)``): building
# every command's ~150 arguments cost a `wsideid scan LABEL` process ~15 ms of CPU (argparse
# formats each argument as it is added, and the deid arguments import dicomweb_cli and
# tempfile), a measurable part of issue 14's 0.6 s a label.
LEAN_COMMANDS = {"scan": _add_scan}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (a LEAN_COMMANDS name), the top level and that
    command alone: the same parser for that command's arguments, help and errors."""
    ap = argparse.ArgumentParser(prog="wsideid", description=DESCRIPTION, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"wsideid {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is not None:
        LEAN_COMMANDS[only](sub)
        return ap

    p = sub.add_parser("inspect", help="show format, images and every metadata field with the planned action")
    p.add_argument("slide", help="a slide file or a DICOM series folder (nothing is written)")
    _add_deid_common(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("deid", help="write a verified de-identified copy into OUTDIR (or --in-place); a folder of"
                                    " slides runs as a batch with generated research IDs")
    p.add_argument("input", nargs="?", help="a slide file, a DICOM series folder, or a folder of slides (each file or"
                                            " DICOM subfolder becomes one row of a generated manifest; see `wsideid"
                                            " run`), or none with --from-dicomweb URL --study UID")
    p.add_argument("-o", "--output", metavar="OUTDIR",
                   help="output folder, created when missing (required unless --in-place)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="a folder of slides: slides processed in parallel (default 1)")
    p.add_argument("--in-place", action="store_true",
                   help="rewrite the input itself, crash-safely, at a cost set by the metadata (no copy is kept)")
    _add_deid_common(p)
    p.add_argument("--verify", choices=["sample", "full"], default="sample",
                   help="compare a sample of tiles per image (default) or all of them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--mkdir", action="store_true", help=argparse.SUPPRESS)  # OUTDIR is always created now
    p.add_argument("--audit-dir", metavar="DIR", help="write the audit JSON here instead of next to the output")
    p.add_argument("--no-hash", action="store_true", help="no hash at all (same as --hash none)")
    p.add_argument("--hash", choices=["blake3", "sha256", "none"], default="blake3",
                   help="the output's hash in the audit, computed while the bytes are copied (default blake3:"
                        " a quarter of sha256's CPU; check it with b3sum)")
    p.add_argument("--hash-input", action="store_true",
                   help="also hash the input, for the lab record only (a second pass over the input)")
    p.add_argument("--to-dicom", action="store_true",
                   help="convert the de-identified SVS/NDPI/TIFF to DICOM WSI (wsidicomizer), then verify it as DICOM")
    p.add_argument("--mpp", type=float, metavar="UM",
                   help="--to-dicom: the level-0 pixel spacing in microns per pixel, for a source that does not"
                        " record it (e.g. --mpp 0.25); a source that records it must agree")
    p.add_argument("--detect", choices=["off", "residual", "all"], default=None,
                   help="barcode/OCR detectors: on kept images (residual, default for one slide), also on the removed"
                        " label/macro (all, default for a folder of slides: the QC page shows them), or off")
    p.add_argument("--no-ocr", action="store_true", help="barcodes only (faster; misses printed and handwritten text)")
    p.add_argument("--identifier", action="append", metavar="TEXT",
                   help="a known original identifier (accession, name) to look for; repeatable")
    _add_naming(p)
    from .dicomweb_cli import add_deid_arguments
    add_deid_arguments(p)
    p.set_defaults(func=cmd_deid)

    _add_scan(sub)

    p = sub.add_parser("redact", help="deid plus lossless blanking of regions (requires --region)")
    p.add_argument("input", help="a slide file or a DICOM series folder")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder, created when missing")
    _add_deid_common(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--mkdir", action="store_true", help=argparse.SUPPRESS)  # OUTDIR is always created now
    p.add_argument("--detect", choices=["off", "residual", "all"], default="residual",
                   help="barcode/OCR detectors: on kept images (residual, default), also on the removed"
                        " label/macro (all), or off")
    _add_naming(p)
    p.set_defaults(func=cmd_redact)

    p = sub.add_parser("verify", help="check a de-identified OUTPUT against its ORIGINAL")
    p.add_argument("original", help="the slide as it was before de-identification")
    p.add_argument("output_file", metavar="output", help="the de-identified slide (file or DICOM folder) to check")
    _add_deid_common(p)
    p.add_argument("--verify", choices=["sample", "full"], default="full",
                   help="compare all tiles of every image (full, default) or a sample of them")
    p.add_argument("--identifier", action="append", metavar="TEXT",
                   help="a known original identifier that must not occur in the output; repeatable")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("demo", help="make sample slides with planted PHI and de-identify them")
    p.add_argument("--workdir", default="wsideid-demo", help="folder for the samples and outputs (default ./wsideid-demo)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    p.set_defaults(func=cmd_demo)
    _add_batch_commands(sub)  # batch commands (issue 7), defined below
    from .dicomweb_cli import add_commands
    add_commands(sub, _print)  # push, map lookup (issue 15)
    return ap


# ---------------------------------------------------------------------------
# Batch commands (issue 7): run, report, review apply. Logic lives in
# wsideid.batch and wsideid.report; these only parse and print.
# ---------------------------------------------------------------------------

def _add_reencode_j2k(p) -> None:
    p.add_argument("--reencode-j2k", action="store_true",
                   help="allow blanking JPEG 2000 tiles/frames (Aperio J2K SVS, DICOM J2K): only the touched ones are"
                        " decoded, blanked and encoded again reversibly (5/3 wavelet, checked exact); the rest keep"
                        " their bytes; the audit lists the re-encoded ones")


def cmd_run(args) -> int:
    from .batch.runner import BatchOptions, run_batch
    opts = BatchOptions(jobs=max(1, args.jobs), dask=args.dask, review_dir=args.review_dir,
                        source_root=args.source_root, dates=args.dates, secret_file=args.secret_file,
                        detect=args.detect, ocr=not args.no_ocr, verify=args.verify,
                        progress=not args.no_progress and not args.json, overwrite=args.overwrite,
                        to_dicom=args.to_dicom, reencode_j2k=args.reencode_j2k)
    res = run_batch(args.manifest, args.output, opts)
    _warn_if_no_secret(res.secret_source)
    for name in res.overwrote:
        print(f"wsideid: --overwrite replaced an earlier output: {name}", file=sys.stderr)
    if getattr(args, "push", None):  # every verified output, after the batch (issue 15)
        from .dicomweb_cli import push_batch
        push_batch(args, res)
    return _print_batch(args, res)


def _print_batch(args, res, ignored: list[str] | None = None) -> int:
    """The batch's result (counts, refused rows, folders, QC page) as text or JSON; its exit code."""
    report, code = None, res.exit_code
    if not getattr(args, "no_report", False):
        from .report.page import write_report
        try:
            report = write_report(res.review_dir)
        except OSError as exc:  # (a full disk) the batch's result is still printed; the exit code says so
            print(f"wsideid: error: the QC page was not written: {_os_error_line(exc)}", file=sys.stderr)
            code = max(code, EXIT_ERROR)
    data = {"exit_code": res.exit_code, "counts": res.counts, "ran": res.ran, "skipped": res.skipped,
            "outdir": res.outdir, "review_dir": res.review_dir, "summary": res.summary_path, "qc_report": report,
            "refused_rows": [str(p) for p in res.problems], "failed_rows": res.unfinished(),
            "refused": [{"row": p.row, "new_id": p.new_id, "column": p.column, "message": p.message}
                        for p in res.problems],
            "overwrote": res.overwrote}
    if ignored is not None:  # a folder: its rows are files, named by the file (the manifest was generated)
        data["ignored"] = ignored
        data["refused_rows"] = [f"{p.source or f'row {p.row}'}: {p.message}" for p in res.problems]
        for f in data["failed_rows"]:
            f["source"] = res.sources.get(int(f["row"]), "")

    def text(d):
        lines = [f"batch: {', '.join(f'{n} {k}' for k, n in sorted(d['counts'].items()))}"
                 f" ({d['ran']} processed, {d['skipped']} already done)"]
        if d.get("ignored") is None:  # a manifest: the row, its research ID when it had one, the column
            lines += [f"  refused row {p['row']}, column {p['column']}: {p['message']}"
                      + (f" (new_id {p['new_id']})" if p["new_id"] else "") for p in d["refused"]]
        else:
            lines += [f"  refused {p}" for p in d["refused_rows"]]
        lines += [f"  {f['status']} {f.get('source') or 'row ' + str(f['row'])} ({f['new_id']}): {f['reason']}"
                  if d.get("ignored") is not None else f"  {f['status']} row {f['row']} {f['new_id']}: {f['reason']}"
                  for f in d["failed_rows"]]
        if d.get("ignored"):
            lines.append(f"  ignored (not a slide): {', '.join(d['ignored'])}")
        lines += [f"  replaced (--overwrite) {n}" for n in d["overwrote"]]
        lines += [f"clean output: {d['outdir']} (summary {os.path.basename(d['summary'])})",
                  f"review folder (holds PHI, keep in the lab): {d['review_dir']}"]
        if d["qc_report"]:
            lines.append(f"QC page: {d['qc_report']}")
        return "\n".join(lines) + "\n"
    _print(data, args.json, text)
    return code


def cmd_report(args) -> int:
    from .batch.records import find_review_dir
    from .report.page import write_report
    path = write_report(find_review_dir(args.outdir, args.review_dir))
    _print({"qc_report": path}, args.json, lambda d: f"QC page (holds PHI, keep in the lab): {d['qc_report']}\n")
    return EXIT_OK


def cmd_review_apply(args) -> int:
    from .report.decisions import apply_decisions
    results = apply_decisions(args.decisions, args.outdir, args.review_dir, args.reviewer)
    data = [{"new_id": r.new_id, "decision": r.decision, "ok": r.ok, "message": r.message} for r in results]
    from .cells import shown
    _print(data, args.json, lambda d: "".join(f"{'ok  ' if r['ok'] else 'FAIL'} {shown(r['new_id'])}: {shown(r['message'])}\n"
                                             for r in d) or "no decisions in the file\n")
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def _add_batch_commands(sub) -> None:
    p = sub.add_parser("run", help="de-identify every slide of a manifest (CSV/XLSX) into OUTDIR, in parallel")
    p.add_argument("manifest", help="CSV or .xlsx with columns source,new_id[,subject,identifiers,...]"
                                    " (see docs/user-guide.md); CSV separated by commas, semicolons or"
                                    " tabs, UTF-8 or UTF-16 (Excel's \"CSV UTF-8\" or \"Unicode text\")")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="clean slides, audits, batch summary")
    p.add_argument("--review-dir", metavar="DIR", help="lab-side folder, outside OUTDIR: flagged slides, label"
                                                     " images, name mapping, per-slide records with the"
                                                     " reason a slide failed, QC page (default: OUTDIR-review)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="slides processed in parallel (default 1)")
    p.add_argument("--dask", metavar="ADDRESS", help="run the jobs on this Dask scheduler (shared storage needed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs an earlier run left in OUTDIR (each one is named on stderr and in the summary)")
    p.add_argument("--source-root", metavar="DIR", help="folder the manifest's sources are relative to"
                                                      " (default: the manifest's folder)")
    p.add_argument("--dates", choices=["remove", "year", "shift"], default="remove",
                   help="date policy for rows without a dates column value: remove (default), year (keep the"
                        " year only), shift (keyed per-subject offset; needs a secret and a subject column)")
    p.add_argument("--secret-file", metavar="F",
                   help="secret key for date shifts, UIDs and the pseudonyms of rows without new_id (else"
                        " $WSIDEID_SECRET; without one a random key is used and a warning printed)")
    p.add_argument("--detect", choices=["off", "residual", "all"], default="all",
                   help="detectors: all (default: also the removed label/macro, for the QC page), residual, off")
    p.add_argument("--no-ocr", action="store_true", help="barcodes only (faster)")
    p.add_argument("--verify", choices=["sample", "full"], default="sample",
                   help="compare a sample of tiles per image (default) or all of them")
    p.add_argument("--no-report", action="store_true", help="do not write the QC page")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal) or progress lines (in a log)")
    p.add_argument("--to-dicom", action="store_true",
                   help="convert every de-identified SVS/NDPI/TIFF slide to DICOM WSI (wsidicomizer), verified as"
                        " DICOM: one folder per slide; the manifest's mpp column supplies a missing pixel spacing")
    _add_reencode_j2k(p)
    p.add_argument("--push", metavar="URL", help="after the batch, send every verified DICOM output to this"
                                                 " DICOMweb root by STOW-RS (record: pushed.csv in the review folder)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write the QC page (HTML) of a batch into its review folder")
    p.add_argument("outdir", metavar="OUTDIR", help="the OUTDIR of an earlier `wsideid run` or folder `deid`")
    p.add_argument("--review-dir", metavar="DIR", help="the review folder the run used (default: OUTDIR-review)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("review", help="apply QC decisions: `review apply DECISIONS.csv OUTDIR`")
    rsub = p.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    a = rsub.add_parser("apply", help="move approved flagged slides into OUTDIR after re-verifying them;"
                                      " rejected ones stay in the review folder (exit 2 if any row failed)")
    a.add_argument("decisions", metavar="DECISIONS.csv",
                   help="as exported from the QC page (columns new_id, decision = approve or reject, reviewer,"
                        " note); also as Excel saves it again (';' or tab separated, UTF-8 or UTF-16)")
    a.add_argument("outdir", metavar="OUTDIR", help="the OUTDIR of the batch")
    a.add_argument("--review-dir", metavar="DIR", help="the review folder the run used (default: OUTDIR-review)")
    a.add_argument("--reviewer", metavar="NAME", help="who decided (overrides the CSV's reviewer column)")
    a.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    a.set_defaults(func=cmd_review_apply)

# --- end of batch commands ---------------------------------------------------


def _quiet_libraries() -> None:
    """Library log records and Python warnings stay off stderr, which carries the tool's own
    lines only (on a hostile TIFF tifffile logged two lines per bad page around the one-line
    error). WSIDEID_DEBUG=1 lets them through."""
    import logging
    import warnings
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())  # no handler anywhere printed WARNING+ via lastResort
    warnings.simplefilter("ignore")


def _os_error_line(exc: OSError) -> str:
    """``cannot use /x/y: Permission denied``: the path and the reason, never a traceback."""
    what = exc.strerror or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"cannot use {' -> '.join(paths)}: {what}" if paths else what


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = build_parser(argv[0] if argv[:1] and argv[0] in LEAN_COMMANDS else None)
    args = ap.parse_args(argv)
    if not os.environ.get("WSIDEID_DEBUG"):
        _quiet_libraries()
    try:
        return args.func(args)
    except WsideidError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"wsideid: error: {msg}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_ERROR)
    except KeyboardInterrupt:
        print("wsideid: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except OSError as exc:  # a path the tool could not read or write: one line naming it
        if os.environ.get("WSIDEID_DEBUG"):
            raise
        print(f"wsideid: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("WSIDEID_DEBUG"):
            raise
        print(f"wsideid: internal error: {type(exc).__name__} (set WSIDEID_DEBUG=1 for details; please report)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
