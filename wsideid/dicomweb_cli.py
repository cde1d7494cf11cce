"""Command-line pieces of issue 15: ``deid --from-dicomweb``, ``--push``, ``push``, ``map lookup``.

Kept out of cli.py so that file stays a list of commands; like it, these
only parse, call wsideid.dicomweb / wsideid.pseudomaps, and print.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from typing import Any, Callable

from .errors import WsideidError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def add_deid_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-dicomweb", metavar="URL",
                   help="read the input from this DICOMweb root (e.g. http://host:8042/dicom-web) by QIDO-RS and"
                        " WADO-RS, with --study UID; the study is held in a temporary owner-only folder")
    p.add_argument("--study", metavar="UID", help="Study Instance UID to read with --from-dicomweb")
    p.add_argument("--push", metavar="URL",
                   help="after verification, send the clean output to this DICOMweb root by STOW-RS"
                        " (a flagged or failed slide is never sent; record: pushed.csv in the review folder)")


def _review(args, outdir: str) -> str:
    from .naming import review_dir
    return review_dir(outdir, getattr(args, "review_dir", None))


def deid_from_dicomweb(args, deid_one: Callable[[Any], int], deid_folder: Callable[[Any], int]) -> int:
    """Fetch the study into a temporary folder, then de-identify it as a DICOM folder input:
    one slide (the study's only one, or the one ``--series`` names), or, when the study holds
    several and none was picked, every slide as a batch with generated research IDs, as
    ``deid FOLDER`` does (a study is a case: its slides come together).

    The lab record's origin comes from the study URL (and each slide's series), not from the
    temporary folder (which is gone after the run).
    """
    from .dicomweb import fetch_study, server_name
    from .keys import load_secret
    from .naming import NamedBy, choose
    if not args.study:
        raise WsideidError("--from-dicomweb needs --study UID")
    if args.input:
        raise WsideidError("give either an INPUT or --from-dicomweb, not both")
    if getattr(args, "keep_name", False):
        raise WsideidError("--keep-name has no name to keep with --from-dicomweb")
    if getattr(args, "in_place", False):
        raise WsideidError("--in-place cannot rewrite a DICOMweb study")
    with tempfile.TemporaryDirectory(prefix="wsideid-dicomweb-") as tmp:  # mode 0700: it holds the PHI
        folder = os.path.join(tmp, "study")
        os.mkdir(folder, 0o700)
        fetch_study(args.from_dicomweb, args.study, folder)
        args.input = folder
        if getattr(args, "_secret", None) is None:
            args._secret = load_secret(getattr(args, "secret_file", None), allow_random=True)
        origin = f"{server_name(args.from_dicomweb)}/studies/{args.study}"
        from .batch.folder import is_slide_folder
        if is_slide_folder(folder, getattr(args, "series", None)):
            from .batch.job import SourceOrigin
            args._origin = SourceOrigin(folder, origin)
            return deid_folder(args)
        from .dicom.slides import slide_files  # the study's one slide, or the one --series names
        name = choose(folder, slide_files(folder, getattr(args, "series", None)), args.new_id, False, args._secret)
        args._naming = dataclasses.replace(name, origin=origin) if name.named_by != NamedBy.KEPT else None
        return deid_one(args)


def push_after(args, output: str | None) -> dict:
    """``--push`` of ``deid``: the one output just published, if its audit proves it verified."""
    from .dicomweb import push
    if not output:
        raise WsideidError("nothing to push")
    outdir = os.path.dirname(output)
    res = push(outdir, args.push, _review(args, outdir), [os.path.basename(output)])
    if res.refused:
        raise WsideidError(res.refused[0])
    return {"sent": res.sent, "already_sent": res.already}


def push_batch(args, batch) -> None:
    from .dicomweb import push
    res = push(batch.outdir, args.push, batch.review_dir)
    print(f"wsideid: pushed {res.sent} instance(s) ({res.already} sent before) of {len(res.outputs)} output(s)",
          file=sys.stderr)
    if res.refused:
        raise WsideidError(f"{len(res.refused)} output(s) not sent: {res.refused[0]}")


def cmd_push(args, show) -> int:
    from .dicomweb import push
    outdir = args.outdir
    res = push(outdir, args.dicomweb, _review(args, outdir))
    data = {"sent": res.sent, "already_sent": res.already, "outputs": res.outputs, "refused": res.refused}

    def text(d):
        lines = [f"sent {d['sent']} instance(s), {d['already_sent']} already sent, from {len(d['outputs'])} output(s)"]
        lines += [f"  NOT SENT {r}" for r in d["refused"]]
        return "\n".join(lines) + "\n"
    show(data, args.json, text)
    return EXIT_ERROR if res.refused else EXIT_OK


def cmd_map_lookup(args, show) -> int:
    from .cells import shown
    from .pseudomaps import MapKind, lookup
    review = args.review_dir or "."
    if not any(os.path.isfile(os.path.join(review, k.value)) for k in MapKind):
        raise WsideidError("no uid-map.csv or patient-map.csv in the review folder (give --review-dir)")
    found = lookup(review, args.value)
    data = [{"map": m.kind.value, "id_old": m.id_old, "id_new": m.id_new, "matched": m.matched} for m in found]

    def text(d):
        if not d:
            return "not found\n"
        return "".join(f"{m['map']}: {shown(m['id_old'])} -> {shown(m['id_new'])}  (given the {m['matched']} value)\n"
                       for m in d)
    show(data, args.json, text)
    return EXIT_OK if found else EXIT_FINDINGS


def add_commands(sub, show) -> None:
    p = sub.add_parser("push", help="send every verified DICOM output in OUTDIR to a DICOMweb server (STOW-RS)")
    p.add_argument("outdir", metavar="OUTDIR", help="the de-identified outputs (a folder `deid` or `run` wrote)")
    p.add_argument("--dicomweb", metavar="URL", required=True, help="DICOMweb root, e.g. http://host:8042/dicom-web")
    p.add_argument("--review-dir", metavar="DIR", help="where pushed.csv (what was sent) is kept (default OUTDIR-review)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    p.set_defaults(func=lambda a: cmd_push(a, show))

    p = sub.add_parser("map", help="pseudonym maps: `map lookup VALUE` (old -> new, new -> old)")
    msub = p.add_subparsers(dest="map_command", required=True, metavar="ACTION")
    a = msub.add_parser("lookup", help="find a UID or PatientID, original or new, in uid-map.csv and patient-map.csv")
    a.add_argument("value", metavar="VALUE", help="a UID or PatientID, the original or the new one")
    a.add_argument("--review-dir", metavar="DIR", help="the review folder holding the maps (default: current folder)")
    a.add_argument("--json", action="store_true", help="print the result as JSON on stdout (for scripts)")
    a.set_defaults(func=lambda a: cmd_map_lookup(a, show))
