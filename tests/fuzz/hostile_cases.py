"""The hostile-file cases: every format's structural mutations plus file-system oddities,
sampled with a fixed seed, each run as ``wsideid`` processes and judged by fuzz/proc.py.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import extreme, formats, structural
from .proc import Runner, Violation, check_deid, check_inspect, check_scan, tree_hash


@dataclass
class Case:
    id: str
    fmt: str
    build: Callable[[Path], Path]  # makes the input in a folder, returns what the tool is given
    needles: tuple[str, ...]
    commands: tuple[str, ...] = ("deid",)


def _mutated(s: formats.FormatSeed, mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        p = formats.copy_input(s, folder)
        mutate(p)
        return p
    return build


def format_cases(fmt: str, seed: int, n: int | None, family: str | None = None) -> list[Case]:
    """``n`` mutations of one format's seed, sampled with a generator seeded by ``seed`` and the
    format (all when n is None); the same arguments give the same cases in every process.
    ``family``: only mutations of that category (``spells-text``: numeric values spelling a
    planted value, round 5)."""
    rng = random.Random(f"{seed}:{fmt}")
    try:
        s = formats.seed(fmt)
    except LookupError:
        return []
    if family == "spells-text":
        muts = structural.spells_text_mutations(s.path, s.needles, rng) if s.family == "tiff" else []
    elif s.family == "tiff":
        muts = structural.tiff_mutations(s.path, rng) + extreme.tiff_mutations(s.path)
    elif s.family == "mrxs":
        muts = structural.mrxs_mutations(s.path, rng) + extreme.mrxs_mutations(s.path)
    else:
        muts = structural.dicom_mutations(s.path, s.main_file, rng) + extreme.dicom_mutations(s.path, s.main_file)
    if family is not None and family != "spells-text":
        muts = [m for m in muts if category(m[0]) == family]
    if n is not None and n < len(muts):
        muts = _stratified(muts, n, random.Random(f"{seed}:{fmt}:{n}"))
    cases = []
    for i, (label, fn) in enumerate(muts):
        cmds = ("deid", "inspect") if i % 3 == 0 else ("deid", "scan") if i % 3 == 1 else ("deid",)
        if category(label).startswith(("jpeg-", "j2k")):
            cmds += ("redact",)  # blanking decodes the entropy-coded data the mutation damaged
        if s.family == "tiff" and i % 3 == 2:
            cmds += ("inplace",)
        cases.append(Case(f"{fmt}:{label}", fmt, _mutated(s, fn), s.needles, cmds))
    return cases


def category(label: str) -> str:
    """The structure a mutation label names: ``truncate``, ``count``, ``jpeg-tile:DHT``, ``xml``..."""
    import re
    head = re.sub(r"[@=\[(].*", "", label.split(":")[0])
    head = re.sub(r"^ifd\d+\.", "", head)
    head = re.sub(r"tag\d+\.", "", head)
    if head.startswith("xml"):
        return "xml"
    if ":" in label and head in ("jpeg-tile", "jpeg-tables", "j2k"):
        head += ":" + re.sub(r"\d+$", "", re.split(r"[-=]", label.split(":")[1])[0])
    return head


def _stratified(muts: list, n: int, rng: random.Random) -> list:
    """``n`` mutations taken round-robin over their categories (random within one), so a small
    sample still reaches every structure, not mostly the many IFD-entry ones."""
    groups: dict[str, list] = {}
    for m in muts:
        groups.setdefault(category(m[0]), []).append(m)
    order = sorted(groups)
    rng.shuffle(order)
    for g in groups.values():
        rng.shuffle(g)
    out: list = []
    while len(out) < n:
        for key in order:
            if groups[key] and len(out) < n:
                out.append(groups[key].pop())
    return out


def _file(name: bytes | str, blob: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        p = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
        p.write_bytes(blob)
        return p
    return build


def _seed_named(fmt: str, name: bytes | str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        s = formats.seed(fmt)
        folder.mkdir(parents=True, exist_ok=True)
        p = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
        shutil.copyfile(s.path, p)
        return p
    return build


def _special(make: Callable[[Path], None], name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / name
        make(p)
        return p
    return build


class _LazySvs:
    """The SVS seed, made on first use (listing the cases must not build seeds)."""

    needles = formats.planted("svs")

    @property
    def path(self) -> Path:
        return formats.seed("svs").path


def filesystem_cases() -> list[Case]:
    """Zero-byte files, folders named like slides, links, devices, FIFOs and odd names."""
    svs = _LazySvs()
    cases = [Case(f"fs:zero-byte{ext}", "fs", _file("empty" + ext, b""), (), ("deid", "inspect", "scan"))
             for ext in (".svs", ".ndpi", ".tif", ".dcm", ".mrxs", ".bif", ".scn", ".qptiff", "")]
    cases += [Case(f"fs:dir-named{ext}", "fs", _special(lambda p: p.mkdir(), "dir" + ext), (), ("deid", "inspect"))
              for ext in (".svs", ".mrxs", ".dcm")]
    cases += [
        Case("fs:mrxs-file-is-dir", "fs", _special(lambda p: (p.mkdir(), (p.with_suffix("")).mkdir()), "x.mrxs"), ()),
        Case("fs:symlink-to-slide", "fs", _special(lambda p: p.symlink_to(formats.seed("svs").path), "link.svs"),
             svs.needles,
             ("deid", "inspect")),
        Case("fs:dangling-symlink", "fs", _special(lambda p: p.symlink_to(p.with_name("gone.svs")), "d.svs"), (),
             ("deid", "inspect", "scan")),
        Case("fs:symlink-loop", "fs", _special(lambda p: p.symlink_to(p), "loop.svs"), (), ("deid", "inspect")),
        Case("fs:dev-zero", "fs", _special(lambda p: p.symlink_to("/dev/zero"), "zero.svs"), (),
             ("deid", "inspect", "scan")),
        Case("fs:dev-urandom", "fs", _special(lambda p: p.symlink_to("/dev/urandom"), "rnd.ndpi"), (), ("deid",)),
        Case("fs:fifo", "fs", _special(lambda p: os.mkfifo(p), "pipe.svs"), (), ("deid", "inspect", "scan")),
        Case("fs:non-utf8-name", "fs", _seed_named("svs", b"slide-\xff\xfe-\xe9.svs"), svs.needles,
             ("deid", "inspect", "scan")),
        Case("fs:long-name", "fs", _seed_named("svs", "L" * 250 + ".svs"), svs.needles, ("deid", "inspect")),
        Case("fs:newline-name", "fs", _seed_named("svs", "two\nlines\r.svs"), svs.needles,
             ("deid", "inspect", "scan")),
        Case("fs:dash-name", "fs", _seed_named("svs", "-o.svs"), svs.needles, ("deid",)),
        Case("fs:text-as-svs", "fs", _file("notes.svs", b"Patient Jane Doe MRN 88812345\n" * 100), (),
             ("deid", "inspect", "scan")),
        Case("fs:tiff-magic-only", "fs", _file("m.tif", b"II*\0"), (), ("deid", "inspect")),
        Case("fs:bigtiff-magic-only", "fs", _file("m.tif", b"II+\0\x08\0\0\0"), (), ("deid", "inspect")),
        Case("fs:dicm-only", "fs", _file("m.dcm", b"\0" * 128 + b"DICM"), (), ("deid", "inspect")),
    ]
    cases.append(Case("fs:unreadable", "fs", _special(_unreadable(svs), "secret.svs"), (), ("deid", "inspect")))
    return cases


def _unreadable(svs: _LazySvs) -> Callable[[Path], None]:
    """Mode 000; as root (who reads anything) a file whose every read fails (EIO)."""
    def make(p: Path) -> None:
        if os.geteuid() == 0:
            p.symlink_to("/proc/self/mem")
        else:
            shutil.copyfile(svs.path, p)
            os.chmod(p, 0)
    return make


def all_cases(per_format: int | None, seed: int = 20261202) -> list[Case]:
    cases: list[Case] = []
    for fmt in formats.FORMATS:
        cases += format_cases(fmt, seed, per_format)
    return cases + filesystem_cases()


def _in_place(runner: Runner, src: Path, work: Path, case: Case, timeout: float) -> str:
    """``deid --in-place`` on a copy: published (the copy rewritten, holding no planted value) or
    refused in one line with the copy as it was (byte for byte, also when verification failed
    after the switch: the original is put back) and no journal or undo file beside it."""
    from .proc import _needles_in, check_common, check_one_line_error
    folder = work / "inplace"
    folder.mkdir()
    copy = folder / src.name
    shutil.copyfile(src, copy)
    before = tree_hash(copy)
    what = f"{case.id} [inplace]"
    r = runner.run(["deid", str(copy), "--in-place", "--detect", "off", "--review-dir", str(work / "review")],
                   work, timeout)
    check_common(r, what)
    left = sorted(os.listdir(folder))
    try:
        if r.rc in (0, 1):
            leaked = _needles_in(copy.read_bytes(), case.needles)
            if leaked or left != [copy.name, copy.name + ".audit.json"]:
                raise Violation(f"{what}: rewritten, but holds {leaked} / folder {left}")
            return "published" if r.rc == 0 else "flagged"
        if r.rc not in (2, 3):
            raise Violation(f"{what}: unexpected exit {r.rc}: {r.stderr[-300:]!r}")
        check_one_line_error(r, what)
        if tree_hash(copy) != before or left != [copy.name]:
            raise Violation(f"{what}: failed ({r.stderr.strip()}) but the slide changed or {left} is beside it")
        return "refused"
    finally:
        shutil.rmtree(folder)
        shutil.rmtree(work / "review", ignore_errors=True)


def run_case(runner: Runner, case: Case, work: Path, timeout: float = 60) -> dict[str, str]:
    """Build the input, run each command as a process, judge it; returns command -> outcome.
    Raises Violation naming the case on a broken promise."""
    if work.exists():
        shutil.rmtree(work)
    src = case.build(work / "in")
    before = tree_hash(src)
    outcomes: dict[str, str] = {}
    for cmd in case.commands:
        what = f"{case.id} [{cmd}]"
        if cmd == "deid":
            out = work / "out"
            out.mkdir()
            argv = ["deid", str(src), "-o", str(out), "--detect", "off", "--review-dir", str(work / "review")]
            r = runner.run(argv, work, timeout)
            outcomes[cmd] = check_deid(r, out, case.needles, what)
            shutil.rmtree(out)
            shutil.rmtree(work / "review", ignore_errors=True)
        elif cmd == "redact":
            out = work / "out"
            out.mkdir()
            argv = ["redact", str(src), "-o", str(out), "--region", "0,0,300,200", "--detect", "off", "--reencode-j2k",
                    "--review-dir", str(work / "review")]
            outcomes[cmd] = check_deid(runner.run(argv, work, timeout), out, case.needles, what)
            shutil.rmtree(out)
            shutil.rmtree(work / "review", ignore_errors=True)
        elif cmd == "inplace":
            outcomes[cmd] = _in_place(runner, src, work, case, timeout)
            continue  # the copy it rewrote is not the input
        elif cmd == "inspect":
            outcomes[cmd] = check_inspect(runner.run(["inspect", str(src)], work, timeout), what)
        elif cmd == "scan":
            outcomes[cmd] = check_scan(runner.run(["scan", "--no-ocr", str(src)], work, timeout), what)
        if tree_hash(src) != before:
            raise Violation(f"{what}: the input was modified")
    leftovers = [n for n in os.listdir(work) if n not in ("in",)]
    if leftovers:
        raise Violation(f"{case.id}: left {leftovers} next to the input")
    return outcomes
