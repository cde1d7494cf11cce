"""The second text engine: PP-OCR (via RapidOCR's ONNX models), out of process.

Why a second engine: tesseract misses faint, small or handwritten print
that a neural recogniser reads, and the two fail on different labels, so
a value either one reads with confidence is checked for PHI (ensemble for
recall). Why PP-OCR through ``rapidocr-onnxruntime``: CPU-only, its
detection and recognition models ship inside the wheel (nothing fetched at
run time), Apache-2.0, and it reads Latin print and digits well.

Why out of process: onnxruntime and the models take 70-130 MB and a
detection pass up to 400 MB, while a deid process must stay under 100 MB.
The worker (a ``python -c`` child running :func:`main`) lives for one batch of
images and exits, so its memory is returned at once; the caller never
imports onnxruntime. The worker runs one thread (the machine's other core
is copying the slide).

The worker only recognises ready-made line crops: the lines are found
cheaply by :mod:`.textregions`, so PP-OCR's detector (and OpenCV, which
RapidOCR's own pipeline imports) is never loaded: worker peak 84-87 MB on real
labels and macros (bench/bench_rss.py); a line 1600 px wide at 48 px high reaches ~118 MB.
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from PIL import Image

CALL_TIMEOUT_S = 60
REC_HEIGHT = 48  # the recogniser's input height (PP-OCRv4)
REC_MIN_WIDTH = 320


@dataclass(frozen=True)
class PpLine:
    """One recognised line crop."""

    text: str
    confidence: float


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether the models are installed (without importing onnxruntime here)."""
    from importlib.util import find_spec

    return find_spec("rapidocr_onnxruntime") is not None and find_spec("onnxruntime") is not None


def _frame(images: Sequence[Image.Image]) -> bytes:
    """Each image as greyscale samples, raw: width and height (4 bytes each), then the rows.

    The worker reads greyscale (it converted every crop to L itself), so the conversion
    is made here instead; raw, not PNG, because deflating a scan's dozen crops and
    inflating them in the worker was work for nothing on a pipe.
    """
    out = io.BytesIO()
    for im in images:
        g = im if im.mode == "L" else im.convert("L")
        out.write(struct.pack(">II", g.width, g.height))
        out.write(g.tobytes())
    return out.getvalue()


def _run(mode: str, images: Sequence[Image.Image]) -> list:
    if not images:
        return []
    if mode == "rec" and _may_fork():
        return _run_forked(images)
    return _run_spawned(mode, images)


FORK_ENV = "WSIDEID_PPOCR_FORK"  # "0": always start a fresh interpreter
# A forked worker starts with the parent's pages (copy-on-write, but counted in its RSS):
# its peak is about the parent's resident set at the fork plus 36-40 MB. Forked only from a
# parent this small, so that the worker stays near a fresh one's peak (`wsideid scan` of a
# label: parent 40-51 MB at the fork, forked worker 83-92 MB, fresh 85-87).
FORK_MAX_PARENT_RSS = 56 << 20


def _may_fork() -> bool:
    """Whether the worker may be a fork of this process instead of a fresh interpreter.

    Why: a fresh worker pays the interpreter's start and imports numpy and Pillow again
    (~0.1 s CPU of the ~0.25-0.4 s a label's worker costs), all of which this process has
    loaded already. Only on Linux, from a process running one Python thread (a deid run
    scans beside its copy in a thread: it starts a fresh worker, as before), whose
    resident set is small (``FORK_MAX_PARENT_RSS``), and never once onnxruntime is loaded
    here (the worker's state must not be the parent's). numpy's OpenBLAS threads are
    shut down around a fork by OpenBLAS itself (its pthread_atfork handler).
    """
    import threading

    if os.environ.get(FORK_ENV, "1") == "0" or sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    if threading.active_count() != 1 or "onnxruntime" in sys.modules:
        return False
    return _resident_bytes() <= FORK_MAX_PARENT_RSS


def _resident_bytes() -> int:
    """This process's resident set now (Linux), or a value that forbids forking."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 1 << 62


def _run_forked(images: Sequence[Image.Image]) -> list:
    """:func:`_rec_worker` in a forked child; its JSON answer comes back on a pipe.

    The child never returns into the caller's code: whatever happens it leaves by
    ``os._exit`` (no atexit handlers, no flush of the parent's buffered output).
    """
    import select
    import signal
    import time
    import warnings

    from .errors import DetectorError

    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: OpenBLAS's parked thread
        pid = os.fork()
    if pid == 0:  # the worker
        status = 1
        try:
            os.close(r)
            try:
                os.environ.update(OMP_NUM_THREADS="1", OMP_THREAD_LIMIT="1")
                from ..memory import tune
                tune(256 << 10)
                body = b"0" + json.dumps(_rec_worker(list(images))).encode()
                status = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
                body = b"1" + (f"{type(exc).__name__}: {exc}".splitlines() or ["error"])[0][:200].encode(
                    "utf-8", "replace")
            view = memoryview(body)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(status)
    os.close(w)
    chunks, deadline = [], time.monotonic() + CALL_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise DetectorError("PP-OCR timed out")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    body = b"".join(chunks)
    if os.waitstatus_to_exitcode(status) != 0 or body[:1] != b"0":
        message = body[1:].decode("utf-8", "replace") if body[:1] == b"1" else "worker ended without an answer"
        raise DetectorError(f"PP-OCR failed: {message}")
    return json.loads(body[1:])


def _run_spawned(mode: str, images: Sequence[Image.Image]) -> list:
    from .errors import DetectorError

    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_THREAD_LIMIT="1")
    # The worker imports this very copy of the package, whatever the cwd
    # or an installed copy would put first on the path.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # ``wsideid.detect`` stands in as a bare package: its ``__init__`` would import every
    # detector (zxing, pytesseract, numpy-heavy text regions: 9 MB) that the worker never uses.
    detect = os.path.join(root, "wsideid", "detect")
    code = (f"import sys, types; sys.path.insert(0, {root!r}); pkg = types.ModuleType('wsideid.detect'); "
            f"pkg.__path__ = [{detect!r}]; import wsideid; sys.modules['wsideid.detect'] = pkg; "
            f"from wsideid.detect.ppocr import main; sys.exit(main([{mode!r}]))")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=_frame(images),
            capture_output=True,
            timeout=CALL_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise DetectorError("PP-OCR timed out") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise DetectorError(f"PP-OCR failed: {tail[0][:200]}")
    return json.loads(proc.stdout)


def recognise_lines(crops: Sequence[Image.Image]) -> list[PpLine]:
    """Text and confidence of each upright line crop, in order."""
    return [PpLine(t, float(c)) for t, c in _run("rec", crops)]


# ---- worker side (runs in the child process only) ----


def _options(level):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    # ORT's arena on: without it every tensor came from malloc and the heap fragmented (a
    # 1600 px line peaked at 150 MB, arena on: 110 MB, and 4x faster). Large blocks are
    # mapped on their own (``memory.tune``), so what the session load frees goes back.
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    opts.log_severity_level = 4
    opts.graph_optimization_level = level
    return opts


def _session(model: str):
    """The recogniser's session: from the optimised copy in the model cache when there is
    one (made on the first call), else from ``model`` with basic fusions.

    Why a cache: ORT's full optimisation (``ORT_ENABLE_ALL``: the NCHWc layout of the
    convolutions for this CPU's vector width) makes each line ~25 % cheaper to recognise
    (21 vs 29 ms CPU for a 320 px crop), but optimising takes ~0.09 s at every session
    start and an optimised session built from the original keeps a second, fused copy of the
    weights (worker peak 104 MB with it, 96 MB without). The optimised graph saved once
    and loaded with optimisation off costs ~0.025 s to load (basic: ~0.04) and peaks lower
    (83-88 MB). Its outputs equal the optimised session's; against basic fusions the
    probabilities differ by at most ~2e-6. The copy is specific to the ORT version, the
    model file and the CPU (its layout is), all three in its name (:func:`cache_path`).
    """
    import onnxruntime as ort

    level = ort.GraphOptimizationLevel
    cached = cache_path(model)
    if cached is not None and not os.path.isfile(cached):
        _write_optimised(model, cached)
    if cached is not None and os.path.isfile(cached):
        try:
            return ort.InferenceSession(cached, _options(level.ORT_DISABLE_ALL), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - a damaged copy: removed, the original is used
            _remove(cached)
    # Basic fusions only without the cache: full optimisation keeps the second copy (above).
    return ort.InferenceSession(model, _options(level.ORT_ENABLE_BASIC), providers=["CPUExecutionProvider"])


MODEL_CACHE_ENV = "WSIDEID_MODEL_CACHE"  # a folder for the optimised model, or "off"
_CACHE_FORMAT = "1"  # bumped when what is cached changes


def cache_dir() -> str | None:
    """Where optimised models are kept: ``$WSIDEID_MODEL_CACHE`` ("off" or empty: nowhere),
    else ``$XDG_CACHE_HOME/wsideid/models`` (``~/.cache/wsideid/models``).

    The folder is trusted like the installed package (a model file there is what the
    worker runs): it is made private (0700) and only files this module wrote are read."""
    from .user_cache import folder
    return folder(MODEL_CACHE_ENV, "models")


def _cpu_identity() -> str:
    """What the optimised layout depends on: the machine and its instruction set."""
    import platform

    ident = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "Features", "model name", "vendor_id"):
                    ident.append(line.strip())
                if not line.strip():  # the first processor's block is enough
                    break
    except OSError:
        pass
    return "\n".join(ident)


def cache_path(model: str) -> str | None:
    """The optimised copy of ``model`` for this ORT version and CPU, or None (no cache)."""
    import hashlib

    import onnxruntime as ort

    folder = cache_dir()
    if folder is None:
        return None
    try:
        st = os.stat(model)
    except OSError:
        return None
    ident = "\n".join([_CACHE_FORMAT, ort.__version__, os.path.realpath(model), str(st.st_size),
                        str(st.st_mtime_ns), _cpu_identity()])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    stem = os.path.splitext(os.path.basename(model))[0]
    return os.path.join(folder, f"{stem}.{digest}.ort-all.onnx")


def _write_optimised(model: str, cached: str) -> None:
    """Optimise ``model`` fully and save the graph as ``cached`` (written under a temporary
    name and renamed, so a reader sees a whole file or none); nothing when the folder
    cannot be written (the caller then loads the original)."""
    import onnxruntime as ort

    tmp = f"{cached}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cached), mode=0o700, exist_ok=True)
        opts = _options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        opts.optimized_model_filepath = tmp
        # Built only to write the file, then dropped: the run loads the saved copy. No arena
        # and no prepacked weights (neither is in the file; the copy's outputs are the same to
        # the bit): the worker that writes the cache peaks ~10 MB lower.
        opts.enable_cpu_mem_arena = False
        opts.add_session_config_entry("session.disable_prepacking", "1")
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        os.replace(tmp, cached)
    except Exception:  # noqa: BLE001 - no cache is no error: the original model still runs
        _remove(tmp)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _model_path(name: str) -> str:
    from importlib.util import find_spec

    spec = find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:  # worker side: the message reaches the caller's DetectorError
        raise RuntimeError("rapidocr-onnxruntime is not installed")
    return os.path.join(os.path.dirname(spec.origin), "models", name)


def _rec_worker(images: list[Image.Image]) -> list[tuple[str, float]]:
    """PP-OCRv4 recognition with greedy CTC decoding, one crop at a time."""
    import numpy as np

    sess = _session(_model_path("ch_PP-OCRv4_rec_infer.onnx"))
    chars = ["blank", *sess.get_modelmeta().custom_metadata_map["character"].splitlines(), " "]
    name = sess.get_inputs()[0].name
    out = []
    for im in images:
        g = im.convert("L")
        w = max(REC_MIN_WIDTH, min(1600, round(g.width * REC_HEIGHT / max(1, g.height))))
        tw = min(w, max(8, round(g.width * REC_HEIGHT / max(1, g.height))))
        arr = np.zeros((1, 3, REC_HEIGHT, w), np.float32)
        x = np.asarray(g.resize((tw, REC_HEIGHT), Image.Resampling.BILINEAR), np.float32) / 127.5 - 1.0
        arr[0, :, :, :tw] = x
        prob = sess.run(None, {name: arr})[0][0]
        idx, p = prob.argmax(axis=1), prob.max(axis=1)
        text, confs, prev = [], [], -1
        for i, c in zip(idx.tolist(), p.tolist()):
            if i != prev and i != 0 and i < len(chars):
                text.append(chars[i])
                confs.append(c)
            prev = i
        out.append(("".join(text).strip(), float(sum(confs) / len(confs)) if confs else 0.0))
    return out


def _read_frames(data: bytes) -> list[Image.Image]:
    """The images :func:`_frame` wrote; a frame cut short raises ValueError."""
    images, pos = [], 0
    while pos + 8 <= len(data):
        w, h = struct.unpack(">II", data[pos : pos + 8])
        end = pos + 8 + w * h
        if end > len(data):
            raise ValueError("truncated frame")
        images.append(Image.frombytes("L", (w, h), data[pos + 8 : end]))
        pos = end
    return images


def main(argv: Sequence[str]) -> int:
    from ..memory import tune
    tune(256 << 10)  # ORT's arena serves the tensors; what the session load frees (the parsed model) goes back
    mode = argv[0] if argv else ""
    images = _read_frames(sys.stdin.buffer.read())
    if mode == "rec":
        result = _rec_worker(images)
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
