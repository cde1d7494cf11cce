"""Open DICOM slides with wsidicom and OpenSlide in a short-lived child process.

Why a child: the readers check (``verify._check_readers``) is the only use
of wsidicom and the DICOM side's only use of OpenSlide, and importing
wsidicom pulls in pydicom's coded-concept tables: 14 MB more for the
run's main process, which must stay <= 100 MB on a real slide (issue 17).
The child lives for the check alone and returns its memory when it exits;
it also keeps a reader that crashes on a hostile file (a segfault in a C
library) from taking the run with it.

Fail closed: a child that dies, times out or answers garbage is not read
as "could not open the input, skipped": ``ReadersFailed`` is raised and
the check it serves fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

TIMEOUT_S = 600  # header parsing of a large series under load; the child reads no pixels


class Reader(str, Enum):
    WSIDICOM = "wsidicom"
    OPENSLIDE = "openslide"


@dataclass(frozen=True)
class Opening:
    """What one reader made of a set of files: their levels, or why it could not open them."""

    levels: list[tuple[int, int]] | None
    associated: list[str]
    error: str | None  # the exception's type name when the reader failed


class ReadersFailed(RuntimeError):
    """The child process did not answer (crashed, timed out, or wrote no valid answer)."""


class Pending:
    """A started child; ``result`` waits for its answers. The questions go in a file that is the
    child's stdin, so the child reads them at once and opens the slides beside the verifier's
    other checks (on the machine's other core) instead of waiting for ``result`` to send them."""

    def __init__(self, jobs: Sequence[tuple[Reader, Sequence[str]]]):
        self.count = len(jobs)
        self.proc: subprocess.Popen | None = None
        if not jobs:
            return
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                "from wsideid.dicom.readers import child_main; sys.exit(child_main())")
        with tempfile.TemporaryFile() as questions:
            questions.write(json.dumps([[r.value, list(files)] for r, files in jobs]).encode())
            questions.seek(0)
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=questions, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)

    def close(self) -> None:
        """Stop a child whose answers are no longer wanted (an earlier check ended the run)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()

    def result(self) -> list[Opening]:
        if self.proc is None:
            return []
        try:
            stdout, _ = self.proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.communicate()
            raise ReadersFailed(f"the reader process timed out after {TIMEOUT_S} s") from exc
        if self.proc.returncode != 0:
            raise ReadersFailed(f"the reader process exited with {self.proc.returncode}")
        try:
            answers = json.loads(stdout)
            out = [Opening([tuple(lv) for lv in a["levels"]] if a["levels"] is not None else None,
                           [str(x) for x in a["associated"]], a["error"]) for a in answers]
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadersFailed("the reader process gave no valid answer") from exc
        if len(out) != self.count:
            raise ReadersFailed("the reader process answered a different number of questions")
        return out


def start(jobs: Sequence[tuple[Reader, Sequence[str]]]) -> Pending:
    """Each (reader, files) to be opened in one child process, started now."""
    return Pending(jobs)


# ---- child side ----


def _open(reader: str, files: list[str]) -> dict:
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reader == Reader.WSIDICOM.value:
                from wsidicom import WsiDicom
                with WsiDicom.open(files) as w:
                    return {"levels": [list(lv.size.to_tuple()) for lv in w.levels], "associated": [], "error": None}
            import openslide
            s = openslide.OpenSlide(files[0])
            try:
                return {"levels": [list(d) for d in s.level_dimensions], "associated": sorted(s.associated_images),
                        "error": None}
            finally:
                s.close()
    except ImportError:
        raise  # a reader that is not installed judged nothing: the child fails, and with it the check
    except Exception as exc:  # noqa: BLE001 - the parent decides what a failure to open means
        return {"levels": None, "associated": [], "error": type(exc).__name__}


def child_main() -> int:
    jobs = json.loads(sys.stdin.buffer.read())
    # OpenSlide first: its library is small; wsidicom (pydicom's tables) is the larger import.
    order = sorted(range(len(jobs)), key=lambda k: jobs[k][0] != Reader.OPENSLIDE.value)
    answers: list[dict] = [{} for _ in jobs]
    for k in order:
        answers[k] = _open(jobs[k][0], jobs[k][1])
    sys.stdout.write(json.dumps(answers))
    return 0
