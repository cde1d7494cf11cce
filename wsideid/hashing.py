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
import time
from enum import Enum
from typing import Callable, NamedTuple, Protocol

from .errors import WsideidError


class HashAlgorithm(str, Enum):
    BLAKE3 = "blake3"
    SHA256 = "sha256"
    NONE = "none"


DEFAULT = HashAlgorithm.BLAKE3
CHUNK = 1 << 20  # 1 MB: as fast as 4 MB for BLAKE3 and SHA-256 (bench/README.md, issue 14), 3 MB less resident
# The output's hash read that also compares the file with the plan (``OutputHasher``) holds two
# buffers, each hashed or compared right after its read: at 256 KB both stay in the core's cache
# between the read, the hash and the memcmp; at 1 MB they were read back from memory (0.54 against
# 0.70 CPU s over 1.7 GB on this VM, 128 KB the same as 256; a hash read alone does not change
# with the chunk). bench/README.md, issue 14, session 9.
COMPARE_CHUNK = 256 << 10


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


def file_digest(path: str | int, algorithm: HashAlgorithm) -> str:
    """The hex digest of a whole file (a path, or an open descriptor it reads to the end and
    closes), read in one bounded buffer."""
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
    """A file's digest computed in a thread (hashlib and blake3 release the GIL on big updates).
    The hash recorded for an output is ``OutputHasher``'s, of the file itself."""

    def __init__(self, path: str, algorithm: HashAlgorithm):
        super().__init__(daemon=True)
        self.path, self.algorithm = path, algorithm
        self.hexdigest: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        self._guarded(lambda: file_digest(self.path, self.algorithm))

    def _guarded(self, digest: Callable[[], str]) -> None:
        try:
            self.hexdigest = digest()
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


class FilesHasher(Hasher):
    """Several files' digests, one after another, in one thread (a DICOM folder's instances).

    Why a thread: a DICOM run hashed its instances at publish time, after verification, on the
    path every run waits for (0.4 s of a 1.7 GB folder); started once the files are stamped
    (``PartStamps``), it reads them through the page cache beside verification, as the TIFF
    family's ``OutputHasher`` does, and the stamps prove at publish time that the hashed bytes
    are the verified ones."""

    def __init__(self, paths: list[str], algorithm: HashAlgorithm):
        super().__init__(paths[0] if paths else "", algorithm)
        self.paths = list(paths)
        self.digests: list[str] = []
        self.seconds = 0.0  # the thread's own time hashing

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._guarded(self._all)
        finally:
            self.seconds = time.perf_counter() - t0

    def _all(self) -> str:
        self.digests = [file_digest(p, self.algorithm) for p in self.paths]
        return ",".join(self.digests) or "none"

    def results(self, label: str) -> list[str]:
        """Joined: one digest a path, in order, or the one-line error."""
        self.result(label)
        return self.digests


class FileStamp(NamedTuple):
    """What changes when a file's bytes change: its identity, size and both times. ``ctime`` is
    set by the kernel on every write and cannot be set back by a user (``utime`` moves it too)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileStamp":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled_stamp(fd: int) -> FileStamp:
    """The file's stamp once the kernel's coarse clock has moved past its ctime: a write in
    the same clock tick as the last one would leave ctime as it was, so before the stamp is
    taken the tick must be over (at most a few ms after the writer finished)."""
    coarse = getattr(time, "CLOCK_REALTIME_COARSE", time.CLOCK_REALTIME)
    for _ in range(1000):
        st = os.fstat(fd)
        if time.clock_gettime_ns(coarse) > st.st_ctime_ns:
            return FileStamp.of(st)
        time.sleep(0.001)
    raise WsideidError("the output's change time is in the future; cannot prove it unchanged")


class OutputHasher(Hasher):
    """The written output hashed from the file itself (through the page cache, right after the
    write, beside verification), so the recorded hash is that of the bytes on disk, not of what
    the writer meant to write; with the file's stamp taken before the first byte is read.

    Why a stamp: verification reads the same file, and it is published later by a rename; a bug
    or anyone with write access to the output folder could change it in between. ``unchanged``
    compares the file at ``path`` with the stamp: a write after the stamp moves its ctime, a
    replaced file has another inode. So the hash, the verified bytes and the published bytes
    are the same bytes. (Not covered: a writer holding the file mapped shared from before the
    stamp, whose dirty pages change without a new ctime; the folder is the run's own.)"""

    def __init__(self, path: str, algorithm: HashAlgorithm, recipe=None, source: str | None = None):
        super().__init__(path, algorithm)
        self.recipe, self.source = recipe, source
        self.seconds = 0.0  # the thread's own time hashing (beside verification)
        self.planned: bool | None = None  # with a recipe: whether the file is exactly the writer's plan
        fd = os.open(path, os.O_RDONLY)
        try:
            self.stamp = settled_stamp(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._guarded(self._file_digest)  # the file stamped, even if renamed
        finally:
            self.seconds = time.perf_counter() - t0

    def _file_digest(self) -> str:
        """The file's digest; with a recipe (``tiff.writer.OutputRecipe``), in the same single
        read, whether each of its bytes is the plan's (``planned``: compared chunk by chunk with
        the plan read from the source, where a second hash of the plan cost as much as this one)."""
        if self.recipe is None or self.source is None:
            return file_digest(self._fd, self.algorithm)
        h = new(self.algorithm)
        with open(self._fd, "rb", buffering=0) as out, open(self.source, "rb", buffering=0) as src:
            self.planned = self.recipe.matches(src.fileno(), out.fileno(), h.update, COMPARE_CHUNK, release=True)
        self.recipe = None  # compared: its metadata bytes (the tile tables) go before verification's peak
        return h.hexdigest()

    def unchanged(self, path: str | None = None) -> str | None:
        """None when the file at ``path`` (default: the one hashed) is still the one hashed, else why not."""
        try:
            now = FileStamp.of(os.stat(path or self.path))
        except OSError as exc:
            return f"the output is gone ({exc.strerror})"
        if now == self.stamp:
            return None
        if (now.dev, now.ino) != (self.stamp.dev, self.stamp.ino):
            return "the output was replaced by another file after it was hashed"
        return "the output was written to after it was hashed"


class PartStamps:
    """The stamps of every part of an output (``output_parts``: a file, a DICOM folder's files,
    a MIRAX file and its folder's), taken once written, before verification reads them; an
    output hashed at publish time is then the one verified when ``unchanged`` says so."""

    def __init__(self, path: str):
        self.path = path
        self.stamps: dict[str, FileStamp] = {}
        for _, f in output_parts(path):
            fd = os.open(f, os.O_RDONLY)
            try:
                self.stamps[f] = settled_stamp(fd)
            finally:
                os.close(fd)

    def unchanged(self) -> str | None:
        """None when every part is still the one stamped (and no part came or went), else why not."""
        now = [f for _, f in output_parts(self.path)]
        if sorted(now) != sorted(self.stamps):
            return "the output's files changed after it was written"
        for f, stamp in self.stamps.items():
            try:
                if FileStamp.of(os.stat(f)) != stamp:
                    return f"{os.path.basename(f)} was written to after it was verified"
            except OSError as exc:
                return f"{os.path.basename(f)} is gone ({exc.strerror})"
        return None


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
