"""sha256 of inputs and outputs, for the audit and the lab record.

Why its own module: every driver hashes (a TIFF output while it is being
written, DICOM instances after), and the runner checks the digests at
publish time; one implementation, below all of them.
"""

from __future__ import annotations

import hashlib
import os
import threading

from .errors import WsideidError


class Hasher(threading.Thread):
    """sha256 in a thread (hashlib releases the GIL on big updates).

    Hashes a whole file, or, given a recipe, the output as it is being
    written: new metadata, then the source ranges in output order, then new
    bytes. That runs beside the kernel's copy instead of after it, on the
    other core; verification compares the written tiles with the source, and
    ``--verify full`` re-hashes the file itself.
    """

    def __init__(self, path: str, recipe=None):
        super().__init__(daemon=True)
        self.path = path
        self.recipe = recipe
        self.hexdigest: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb", buffering=0) as fh:
                if self.recipe is not None:
                    self.recipe.feed(fh.fileno(), h.update)  # edited tiles streamed from their pieces
                else:
                    buf = bytearray(4 << 20)
                    view = memoryview(buf)
                    while True:
                        n = fh.readinto(buf)
                        if not n:
                            break
                        h.update(view[:n])
            self.hexdigest = h.hexdigest()
        except OSError as exc:
            self.error = exc.strerror or "read error"
        except WsideidError as exc:
            self.error = str(exc)

    def result(self, label: str) -> str:
        """Join and return the digest; a read error is a one-line refusal."""
        self.join()
        if self.error:
            raise WsideidError(f"cannot hash the {label}: {self.error}")
        return self.hexdigest or ""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_parts(path: str) -> list[tuple[str, str]]:
    """(name, file) of everything an output consists of: a file; a folder's files (DICOM); a
    MIRAX .mrxs file and the files of its folder, whose absence would leave a slide no reader opens."""
    if os.path.isdir(path):
        return [(n, os.path.join(path, n)) for n in sorted(os.listdir(path))]
    companion = os.path.splitext(path)[0]
    if path.lower().endswith(".mrxs") and os.path.isdir(companion) and not os.path.islink(companion):
        return [("", path)] + [(n, os.path.join(companion, n)) for n in sorted(os.listdir(companion))]
    return [("", path)]


def tree_sha256(path: str) -> str | None:
    """sha256 over an output's parts (``output_parts``) in name order, names included for folders."""
    h = hashlib.sha256()
    try:
        for name, f in output_parts(path):
            if name:
                h.update(name.encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(8 << 20), b""):
                    h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()
