"""The output's hash: which algorithm, and a thread that computes it while the bytes move.

The audit records a hash of the output so that anyone can later check the
shared file is the one that was verified. Which hash is a speed choice, not a
security one (both are collision resistant): BLAKE3 is the default because it
costs a quarter of SHA-256's CPU (bench/README.md: 0.26 s against 0.99 s of
one core for 1.7 GB on the bench machine, which has SHA-NI), and on a
two-core machine that CPU is taken from the copy and the stream check that
run at the same time. ``--hash sha256`` is for a lab whose tools expect it
(``sha256sum``); ``b3sum`` checks the default. The audit names the algorithm
as the key of its hash table, so a reader never guesses.

The input's hash links the shared file back to the identified source, so it
never goes to OUTDIR; it costs a whole second pass over the input, so it is
computed only when asked for (``--hash-input``) and lands in the lab record.
"""

from __future__ import annotations

import hashlib
import os
import threading
from enum import Enum
from typing import Protocol

from .errors import WsideidError


class HashAlgorithm(str, Enum):
    BLAKE3 = "blake3"
    SHA256 = "sha256"
    NONE = "none"


DEFAULT = HashAlgorithm.BLAKE3
CHUNK = 4 << 20


class _Digest(Protocol):
    def update(self, data, /) -> object: ...

    def hexdigest(self) -> str: ...


def parse(name: str | HashAlgorithm) -> HashAlgorithm:
    try:
        return HashAlgorithm(name)
    except ValueError:
        raise WsideidError(f"unknown hash {name!r} (choose {', '.join(a.value for a in HashAlgorithm)})") from None


def new(algorithm: HashAlgorithm) -> _Digest:
    """A fresh digest object (update / hexdigest) for ``algorithm`` (not NONE)."""
    if algorithm is HashAlgorithm.SHA256:
        return hashlib.sha256()
    if algorithm is HashAlgorithm.BLAKE3:
        try:
            import blake3
        except ImportError:
            raise WsideidError("--hash blake3 needs the blake3 package (pip install blake3), or use --hash sha256") from None
        return blake3.blake3()  # one thread: the other core is copying and checking the stream
    raise ValueError("no digest for --hash none")


def file_digest(path: str, algorithm: HashAlgorithm) -> str:
    """The hex digest of a whole file, read in one bounded buffer."""
    h = new(algorithm)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


class Hasher(threading.Thread):
    """A digest computed in a thread (hashlib and blake3 release the GIL on big updates).

    Hashes a whole file, or, given a recipe (``tiff.writer.OutputRecipe``),
    the output as it is being written: new metadata, then the source ranges
    in output order, then the edited tiles. That runs beside the kernel's
    copy instead of after it, on the other core; verification compares the
    written tiles with the source, and ``--verify full`` re-hashes the file
    itself.
    """

    def __init__(self, path: str, algorithm: HashAlgorithm, recipe=None):
        super().__init__(daemon=True)
        self.path, self.algorithm, self.recipe = path, algorithm, recipe
        self.hexdigest: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            if self.recipe is None:
                self.hexdigest = file_digest(self.path, self.algorithm)
                return
            h = new(self.algorithm)
            with open(self.path, "rb", buffering=0) as fh:
                self.recipe.feed(fh.fileno(), h.update)  # edited tiles streamed from their pieces
            self.hexdigest = h.hexdigest()
        except OSError as exc:
            self.error = exc.strerror or "read error"
        except WsideidError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any other failure must not leave an empty hash behind
            self.error = f"{type(exc).__name__}: {exc}"

    def result(self, label: str) -> str:
        """Joined: the digest, or the one-line error (never an empty digest)."""
        self.join()
        if self.error or not self.hexdigest:
            raise WsideidError(f"cannot hash the {label}: {self.error or 'no digest'}")
        return self.hexdigest


def sha256_file(path: str) -> str:
    return file_digest(path, HashAlgorithm.SHA256)


def output_parts(path: str) -> list[tuple[str, str]]:
    """(name, file) of everything an output consists of: a file; a folder's files (DICOM); a
    MIRAX .mrxs file and the files of its folder, whose absence would leave a slide no reader opens."""
    if os.path.isdir(path):
        return [(n, os.path.join(path, n)) for n in sorted(os.listdir(path))]
    companion = os.path.splitext(path)[0]
    if path.lower().endswith(".mrxs") and os.path.isdir(companion) and not os.path.islink(companion):
        return [("", path)] + [(n, os.path.join(companion, n)) for n in sorted(os.listdir(companion))]
    return [("", path)]


def tree_sha256(path: str, algorithm: str = "sha256") -> str | None:
    """The hash (sha256 unless the record names another) over an output's parts
    (``output_parts``) in name order, names included for folders."""
    h = new(parse(algorithm))
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
