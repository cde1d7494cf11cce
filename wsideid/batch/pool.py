"""Local worker processes where a dead worker fails its own slide only.

``concurrent.futures.ProcessPoolExecutor`` marks the whole pool broken when
one worker dies (a SIGKILL, the OOM killer), failing every slide not yet
finished, including those not started. Here each worker has its own pipe
and runs one job at a time, so the parent knows which slide a dead worker
held: that slide is reported lost, a new worker takes the dead one's place,
and the batch goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

from .job import SlideJob

STOP_GRACE_S = 20.0  # an interrupted worker's time to drop its slide before it is killed


def _interrupt_once(signum: int, frame: Any) -> None:
    """Ctrl-C reaches a worker twice (the terminal signals the whole process group, then the parent
    passes it on): the first stops the slide, the second must not break the clean-up of its temp files."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(conn: Connection, fn: Callable[[SlideJob], dict]) -> None:
    """N workers on N cores: keep tesseract (OpenMP) from starting N threads each. Interrupted
    (Ctrl-C), the worker drops its slide (the pipeline removes its temp files) and exits quietly;
    the parent reports the slide interrupted."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            conn.send(fn(job))
    except KeyboardInterrupt:
        return


class _Worker:
    def __init__(self, ctx, fn: Callable[[SlideJob], dict]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True, name="wsideid-worker")
        self.proc.start()
        child.close()
        self.job: SlideJob | None = None

    def give(self, job: SlideJob) -> None:
        self.job = job
        self.conn.send(job)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run_pool(jobs: list[SlideJob], workers: int, fn: Callable[[SlideJob], dict],
             lost: Callable[[SlideJob, str], dict]) -> Iterator[dict[str, Any]]:
    """Yield ``fn(job)`` for every job, or ``lost(job, why)`` for one whose worker died."""
    ctx = multiprocessing.get_context()
    pending = deque(jobs)
    pool = [_Worker(ctx, fn) for _ in range(min(workers, len(jobs)))]
    try:
        for w in pool:
            if pending:
                w.give(pending.popleft())
        while any(w.job is not None for w in pool):
            busy = [w for w in pool if w.job is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for i, w in enumerate(pool):
                if w.job is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                result = None
                try:
                    if w.conn.poll():
                        result = w.conn.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None:
                    w.job = None
                    yield result
                elif not w.proc.is_alive() or w.proc.sentinel in ready:
                    w.proc.join()
                    code = w.proc.exitcode
                    why = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                    job, w.job = w.job, None
                    w.conn.close()
                    pool[i] = w = _Worker(ctx, fn)  # replace the dead worker
                    yield lost(job, why)
                else:
                    continue
                if pending:
                    w.give(pending.popleft())
    finally:  # busy workers are left only when the parent stops early (Ctrl-C, an error)
        busy = [w for w in pool if w.job is not None and w.proc.is_alive()]
        for w in busy:
            with contextlib.suppress(OSError):
                os.kill(w.proc.pid, signal.SIGINT)  # each removes its temp files and exits ...
        for w in busy:
            w.proc.join(STOP_GRACE_S)
            if w.proc.is_alive():  # ... or is killed (a stale temp is removed by a later run)
                w.proc.kill()
        for w in pool:
            w.stop()
