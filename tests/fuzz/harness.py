"""Structure-aware mutation fuzzing of the TIFF-family pipeline.

Why structure-aware: flipping random bits of a 2 MB slide mostly hits
entropy-coded pixels, which the tool copies without looking at them. The
interesting inputs are broken *structure*: IFD entries with wrong types,
counts and offsets, IFD chains that loop, offset tables that point into
other data, and JPEG headers with bad segment lengths. A seed slide is
parsed once with our own reader to find where those live; a mutation is a
short list of integer triples ``(op, target, value)`` so that hypothesis
can generate and shrink it and a crasher can be written down as a
regression test in one line.

The oracle (``run_case``) allows exactly two outcomes for every input:

- a published (or flagged) output whose verification passed, that our
  reader and OpenSlide's checks accepted, with nothing else left in the
  output folder, and in which no planted/removed PHI value occurs anywhere
  (pixel ranges included, unlike the pipeline's own residual scan, so that
  a tile pointed at metadata is caught);
- a ``WsideidError`` with a one-line message, and nothing at all in the
  output folder.

Anything else (another exception, a hang past the time limit, a file left
behind, the input modified) is a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import struct
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"

# Small real slides (the fuzz budget goes to many cases, not big files).
REAL_SEEDS = ["svs/CMU-1-Small-Region.svs", "svs/openslide-python_small.svs", "svs/tcga-cr-7395-01a-01-ts1.svs",
              "ndpi/test3-TRITC-2-560.ndpi", "tiff/openslide-python_boxes.tiff"]

Op = tuple[int, int, int]


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in the tool swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang if the block runs longer than ``seconds`` (main thread only)."""
    def on_alarm(signum, frame):
        raise Hang(f"no result within {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Seed:
    """A slide to mutate plus the places in it worth mutating."""

    name: str
    data: bytes
    suffix: str
    planted: list[str]  # values that must never reach an output
    kind: str = "classic"
    bo: str = "<"
    entries: list[tuple[int, int]] = field(default_factory=list)  # (file position, entry size)
    ifd_offsets: list[int] = field(default_factory=list)
    next_ptrs: list[tuple[int, int]] = field(default_factory=list)  # (position, width) of next-IFD pointers
    arrays: list[tuple[int, int, int]] = field(default_factory=list)  # (position, count, element width)
    values: list[int] = field(default_factory=list)  # out-of-line value offsets
    tile_starts: list[int] = field(default_factory=list)
    meta_end: int = 0  # end of the last IFD/value byte (byte flips go below it)


def describe(seed_name: str, ops: Sequence[Op]) -> str:
    return f"{seed_name} ops={list(ops)!r}"


def load_seed(path: str | os.PathLike, planted: list[str] | None = None) -> Seed:
    """Parse ``path`` with our reader and record its mutation targets."""
    import numpy as np

    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data

    path = Path(path)
    data = path.read_bytes()
    tf = read_tiff(path)
    s = Seed(path.name, data, path.suffix, list(planted or []), tf.kind, tf.byteorder)
    big = tf.kind == "bigtiff"
    head, esize = (8, 20) if big else (2, 12)
    nsize = 8 if tf.kind in ("bigtiff", "ndpi") else 4
    ends = [16 if big else 8]
    for ifd in tf.all_ifds():
        s.ifd_offsets.append(ifd.offset)
        n = len(ifd.entries)
        for i, e in enumerate(ifd.entries.values()):
            s.entries.append((ifd.offset + head + i * esize, esize))
            if e.value_offset is not None:
                s.values.append(e.value_offset)
                ends.append(e.value_offset + e.size)
                if e.tag in (273, 279, 324, 325) and e.type in (3, 4, 16):
                    s.arrays.append((e.value_offset, e.count, {3: 2, 4: 4, 16: 8}[e.type]))
        s.next_ptrs.append((ifd.offset + head + n * esize, nsize))
        ends.append(ifd.offset + head + n * esize + nsize)
        d = image_data(ifd, tf.byteorder)
        if d is not None and len(d.src_offsets):
            live = d.src_offsets[d.src_counts > 0]
            s.tile_starts += [int(x) for x in np.unique(live)[:4]]
    s.meta_end = min(max(ends), len(data))
    return s


def _interesting(seed: Seed, b: int) -> int:
    size = len(seed.data)
    pool = [0, 1, 2, 7, 8, 16, 255, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, size, size - 1, size + 1, size // 2,
            2 ** 32 + 8, 2 ** 40, 2 ** 63 - 1]
    pool += seed.ifd_offsets[:8] + seed.values[:8] + seed.tile_starts[:8]
    return pool[b % len(pool)]


_TAGS = [254, 256, 257, 259, 270, 273, 279, 305, 306, 322, 323, 324, 325, 330, 347, 34665, 34853, 65420,
         65421, 65426, 65449, 40965, 700, 0, 0xFFFF]
_TYPES = [0, 1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 17, 18, 19, 0xFFFF]


def _put_uint(buf: bytearray, pos: int, width: int, value: int, bo: str) -> None:
    if pos < 0 or pos + width > len(buf):
        return
    value &= (1 << (8 * width)) - 1
    struct.pack_into(bo + {1: "B", 2: "H", 4: "I", 8: "Q"}[width], buf, pos, value)


N_OPS = 12


def mutate(seed: Seed, ops: Sequence[Op]) -> bytes:
    """Apply ``ops`` to the seed's bytes; every op is total (never raises)."""
    buf = bytearray(seed.data)
    bo = seed.bo
    big = seed.kind == "bigtiff"
    cw = 8 if big else 4  # width of count and value fields
    for op, a, b in ops:
        op %= N_OPS
        if op in (0, 1, 2, 3) and seed.entries:
            pos, _ = seed.entries[a % len(seed.entries)]
            if op == 0:
                _put_uint(buf, pos + 2, 2, _TYPES[b % len(_TYPES)], bo)
            elif op == 1:
                _put_uint(buf, pos + 4, cw, _interesting(seed, b), bo)
            elif op == 2:
                _put_uint(buf, pos + 4 + cw, cw, _interesting(seed, b), bo)
            else:
                _put_uint(buf, pos, 2, _TAGS[b % len(_TAGS)], bo)
        elif op == 4 and seed.next_ptrs:
            pos, width = seed.next_ptrs[a % len(seed.next_ptrs)]
            _put_uint(buf, pos, width, _interesting(seed, b), bo)
        elif op == 5 and seed.arrays:
            pos, count, width = seed.arrays[a % len(seed.arrays)]
            _put_uint(buf, pos + width * ((a >> 8) % max(count, 1)), width, _interesting(seed, b), bo)
        elif op == 6 and min(seed.meta_end, len(buf)):
            pos = a % min(seed.meta_end, len(buf))
            buf[pos] ^= 1 << (b % 8) if b % 9 else 0xFF
        elif op == 7 and seed.tile_starts:
            # JPEG header of a tile: marker bytes and segment lengths
            pos = seed.tile_starts[a % len(seed.tile_starts)] + (a >> 8) % 48
            if pos < len(buf):
                buf[pos] = (0xFF, 0x00, 0xE1, 0xFE, 0xDA, 0xD9, 0x02, b & 0xFF)[b % 8]
        elif op == 8:
            cut = max(0, len(buf) - 1 - (a * 997 + b) % max(len(buf), 1))
            del buf[cut:]
        elif op == 9 and len(buf) > 16:
            # splice: copy a chunk of the file over another place
            n = 1 + b % 64
            src, dst = a % len(buf), (a * 31 + b * 17) % max(seed.meta_end or len(buf), 1)
            chunk = buf[src:src + n]
            buf[dst:dst + len(chunk)] = chunk
        elif op == 10 and seed.ifd_offsets:
            pos = seed.ifd_offsets[a % len(seed.ifd_offsets)]
            _put_uint(buf, pos, 8 if big else 2, _interesting(seed, b), bo)
        elif op == 11 and seed.entries:
            # make an entry a SubIFD/EXIF pointer at an existing IFD (child loops)
            pos, _ = seed.entries[a % len(seed.entries)]
            _put_uint(buf, pos, 2, (330, 34665, 34853)[b % 3], bo)
            _put_uint(buf, pos + 2, 2, 4 if not big else 18, bo)
            _put_uint(buf, pos + 4, cw, 1, bo)
            _put_uint(buf, pos + 4 + cw, cw, seed.ifd_offsets[b % len(seed.ifd_offsets)], bo)
    return bytes(buf)


@dataclass
class Outcome:
    kind: str  # "published" | "flagged" | "error" | "inspect-error"
    message: str = ""


class Violation(AssertionError):
    """The tool broke one of its promises on this input."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _needles_in(data: bytes, needles: Sequence[str]) -> list[str]:
    low = data.lower()
    found = []
    for n in needles:
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            if n.lower().encode(enc) in low:
                found.append(n)
                break
    return found


def _kept_text(plan) -> str:
    """Text the plan keeps or writes: a value moved by a mutation into a kept field is visible in inspect."""
    from wsideid.model import KEEP
    parts = []
    for d in plan.fields:
        if d.action == KEEP:
            parts.append(d.field.text())
        elif d.new_value is not None:
            parts.append(str(d.new_value))
    return "\n".join(parts).lower()


def run_case(data: bytes, workdir: Path, name: str, planted: Sequence[str] = (), *, timeout: float = 20,
             verify: str = "sample", detect: str = "off", check=None) -> Outcome:
    """Feed ``data`` to inspect and deidentify and enforce the allowed outcomes."""
    from wsideid.errors import WsideidError
    from wsideid.pipeline import TMP_PREFIX, DeidOptions, deidentify, inspect

    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / name
    src.write_bytes(data)
    before = _sha(src)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=workdir))
    opts = DeidOptions(new_id="FUZZ-1", verify=verify, detect=detect, ocr=False, hash_outputs=False,
                       review_dir=str(out) + "-review")
    try:
        try:
            with time_limit(timeout):
                inspect(src, opts)
        except WsideidError as exc:
            _check_message(exc)
        except Hang:
            raise Violation("inspect hung") from None
        except Exception as exc:
            raise Violation(f"inspect raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None
        try:
            with time_limit(timeout):
                res = deidentify(src, out, opts)
        except WsideidError as exc:
            _check_message(exc)
            left = sorted(os.listdir(out))
            if left:
                raise Violation(f"failed ({exc}) but left {left} in the output folder")
            return Outcome("error", str(exc))
        except Hang:
            raise Violation("deidentify hung") from None
        except Exception as exc:
            raise Violation(f"deidentify raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None
        finally:
            if _sha(src) != before:
                raise Violation("the input was modified")
        (check or _check_published)(res, out, planted)
        return Outcome(res.status)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(str(out) + "-review", ignore_errors=True)
        src.unlink(missing_ok=True)
        leftovers = [p for p in os.listdir(workdir) if p.startswith(TMP_PREFIX)]
        if leftovers:
            raise Violation(f"temporary files left behind: {leftovers}")


def _check_message(exc: BaseException) -> None:
    msg = str(exc)
    if not msg or "\n" in msg or "\r" in msg:
        raise Violation(f"{type(exc).__name__} without a one-line message: {msg!r}")


def published_output(res) -> tuple[Path, Path]:
    """The output of a run that claims success, checked to stand alone with its audit: (output, folder)."""
    from wsideid.pipeline import TMP_PREFIX

    if res.status not in ("published", "flagged") or res.report is None or not res.report.ok:
        raise Violation(f"returned without a verified output: {res.status}")
    output = Path(res.output)
    if not output.exists():
        raise Violation("published output is missing")
    folder = output.parent
    names = sorted(os.listdir(folder))
    expected = sorted([output.name, output.name + ".audit.json"])
    if names != expected or any(n.startswith(TMP_PREFIX) for n in names):
        raise Violation(f"output folder holds {names}, expected {expected}")
    return output, folder


def oracle_needles(res, planted: Sequence[str]) -> list[str]:
    """Planted values always (a planted value kept verbatim in a kept field is the leak issue 10
    is about); values the plan removed unless a mutation moved them into a kept field."""
    kept = _kept_text(res.plan)
    removed = [v for v in res.plan.removed_values() if len(v) >= 6 and v.lower() not in kept]
    return [v for v in list(planted) + removed if len(v) >= 4 and not (v.startswith("<") and v.endswith(">"))]


def _check_published(res, out: Path, planted: Sequence[str]) -> None:
    from wsideid.tiff.container import read_tiff

    output, folder = published_output(res)
    read_tiff(output)  # must parse again
    data = output.read_bytes()
    needles = oracle_needles(res, planted)
    leaked = _needles_in(data, needles)
    if leaked:
        raise Violation(f"published output still holds {leaked}")
    audit = (folder / (output.name + ".audit.json")).read_bytes()
    leaked = _needles_in(audit, needles)
    if leaked:
        raise Violation(f"audit record holds {leaked}")
