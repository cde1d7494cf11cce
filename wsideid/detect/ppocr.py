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
    out = io.BytesIO()
    for im in images:
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=1)
        out.write(struct.pack(">I", buf.tell()))
        out.write(buf.getvalue())
    return out.getvalue()


def _run(mode: str, images: Sequence[Image.Image]) -> list:
    from .errors import DetectorError

    if not images:
        return []
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


def _session(model: str):
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
    # Basic fusions only: full optimisation keeps a second, fused copy of
    # the weights (measured: worker peak 104 MB with it, 96 MB without).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


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
    images, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        im = Image.open(io.BytesIO(data[pos + 4 : pos + 4 + n]))
        im.load()
        images.append(im)
        pos += 4 + n
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
