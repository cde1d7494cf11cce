"""Writing into OUTDIR and the review folder without following links, and publishing exclusively.

Both folders may be writable by others (shared storage), so a planted
symbolic link must never redirect a write: every file the tool writes is
created under a fresh random name with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (which
does not follow a link) and renamed into place (a rename replaces a link, it
never writes through it). A final name or a folder below the root the user
passed that is a link is refused outright. The root itself may be a link:
the user passed it.

Publishing claims the final name atomically, so two runs publishing the same
name cannot both succeed: a file is hard-linked to its final name
(``link`` fails if the name exists) and its temp name removed; a folder is
renamed with ``renameat2(RENAME_NOREPLACE)`` where the kernel has it, else
the final name is claimed by ``mkdir`` (atomic, fails if it exists) and the
temp folder renamed over that empty folder. ``--overwrite`` replaces, and
the caller says what was replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil

from .errors import WsideidError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_TMP = ".wsideid-tmp-w-"


class LinkRefused(WsideidError):
    """A path the tool would write through is a symbolic link."""


class NameTaken(WsideidError):
    """Another run (or an earlier one) holds the output name."""


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of a regular file. Opened without blocking and
    checked on the open descriptor: a FIFO with no writer blocked ``open`` (a hang), and a device
    such as /dev/zero never ends. Raises IsADirectoryError for a folder and OSError (EINVAL)
    for any other non-regular file, so callers word them as they word other read errors."""
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", os.fspath(path))
        return read_fd(fd, limit)
    finally:
        os.close(fd)


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of an open descriptor, from its position on, in 1 MB reads (a file
    growing while read stops at the limit; callers read ``limit + 1`` to tell "too large")."""
    chunks, got = [], 0
    while got < limit:
        chunk = os.read(fd, min(1 << 20, limit - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def check_no_links(root: str, path: str) -> None:
    """Refuse if ``path`` or any folder between ``root`` and it is a symbolic link.

    ``root`` is what the user passed (OUTDIR, the review folder); it may be a
    link. A ``path`` outside ``root`` is checked from its own folder down only.
    """
    root = os.path.abspath(root)
    path = os.path.abspath(path)
    rel = os.path.relpath(path, root)
    if rel.startswith(os.pardir):
        parts, cur = [os.path.basename(path)], os.path.dirname(path)
    else:
        parts, cur = ([] if rel == os.curdir else rel.split(os.sep)), root
    for part in parts:
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            raise LinkRefused(f"refusing to write through a symbolic link: {os.path.relpath(cur, root)}")


def makedirs(root: str, path: str, mode: int = 0o777) -> str:
    """``os.makedirs`` below ``root`` that refuses a folder which is a link."""
    check_no_links(root, path)
    os.makedirs(path, mode=mode, exist_ok=True)
    check_no_links(root, path)
    return path


def make_folders(*folders: tuple[str, int, str]) -> None:
    """Create each ``(path, mode, what)`` in order (with parents); a failure is one line naming
    the folder and the reason, and the folders this call created before it are removed again,
    so a refused run does not leave an empty OUTDIR behind its unwritable review folder."""
    made: list[str] = []
    try:
        for path, mode, what in folders:
            if os.path.isdir(path):
                continue
            if os.path.lexists(path):
                raise WsideidError(f"the {what} {path} exists and is not a folder")
            try:
                os.makedirs(path, mode=mode, exist_ok=True)
            except OSError as exc:
                raise WsideidError(f"cannot create the {what} {path}: {exc.strerror or type(exc).__name__}") from None
            made.append(path)
    except WsideidError:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise


def create_temp(folder: str, prefix: str = _TMP, mode: int = 0o600) -> tuple[int, str]:
    """A new file under a random name: ``O_EXCL|O_NOFOLLOW``, so never an existing file or a link."""
    for _ in range(16):
        path = os.path.join(folder, prefix + secrets.token_hex(8))
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode), path
        except FileExistsError:
            continue
    raise WsideidError("cannot create a temporary file (16 names taken)")


def write_atomic(path: str, data: bytes | str, root: str | None = None, mode: int = 0o644) -> str:
    """Write ``data`` to ``path`` via a new temp file and a rename; never through a link."""
    folder = os.path.dirname(os.path.abspath(path))
    check_no_links(root or folder, path)
    fd, tmp = create_temp(folder, mode=mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        check_no_links(root or folder, path)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk: say which file, not only why
            raise OSError(exc.errno, exc.strerror, path) from None
        raise
    return path


def append(path: str, data: bytes, header: bytes = b"", root: str | None = None) -> None:
    """One ``write`` on an ``O_APPEND|O_NOFOLLOW`` descriptor (concurrent appenders do not interleave).

    A missing file is first created holding ``header``, atomically (link of a
    temp file, which fails if another writer won)."""
    folder = os.path.dirname(os.path.abspath(path))
    check_no_links(root or folder, path)
    if not os.path.lexists(path):
        fd, tmp = create_temp(folder)
        try:
            try:
                os.write(fd, header)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(f"refusing to write through a symbolic link: {os.path.basename(path)}") from None
        raise
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def publish_file(tmp: str, final: str, overwrite: bool) -> bool:
    """Move the verified ``tmp`` to ``final``; returns True when an existing file was replaced.

    Without ``overwrite`` the name is claimed with ``link`` (fails if it
    exists, atomically); on file systems without hard links an ``O_EXCL``
    create claims it and the temp is renamed over the claim.
    """
    if os.path.islink(final):
        raise LinkRefused(f"refusing to publish over a symbolic link: {os.path.basename(final)}")
    if overwrite:
        existed = os.path.lexists(final)
        os.replace(tmp, final)
        return existed
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise NameTaken(f"output already exists: {os.path.basename(final)} (another run published it;"
                        " use --overwrite to replace it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644))
        except FileExistsError:
            raise NameTaken(f"output already exists: {os.path.basename(final)} (use --overwrite)") from None
        os.replace(tmp, final)
        return False
    os.unlink(tmp)
    return False


def _renameat2_noreplace(src: str, dst: str) -> bool | None:
    """``renameat2(..., RENAME_NOREPLACE)``: True done, False name exists, None unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    at_fdcwd, noreplace = -100, 1
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return None
    raise OSError(err, os.strerror(err), dst)


def publish_dir(ready: str, final: str, overwrite: bool, trash: str) -> bool:
    """Move the verified folder ``ready`` to ``final``; True when an existing output was replaced.

    ``trash`` is a path inside the caller's temp folder where a replaced
    output is moved (and deleted with it)."""
    if os.path.islink(final):
        raise LinkRefused(f"refusing to publish over a symbolic link: {os.path.basename(final)}")
    replaced = False
    if overwrite and os.path.lexists(final):
        if os.path.isdir(final):
            os.replace(final, trash)
        else:
            os.unlink(final)
        replaced = True
    done = _renameat2_noreplace(ready, final)
    if done is False:
        raise NameTaken(f"output already exists: {os.path.basename(final)} (another run published it;"
                        " use --overwrite to replace it)")
    if done is None:  # no renameat2: claim the name with mkdir, then rename over the empty claim
        try:
            os.mkdir(final)
        except FileExistsError:
            raise NameTaken(f"output already exists: {os.path.basename(final)} (use --overwrite)") from None
        try:
            os.rename(ready, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(final)
            raise
    return replaced


def remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


CLAIM_PREFIX = ".wsideid-tmp-claim-"  # a leftover is a temp file like the others (cleaned when old)


def _owner_alive(text: str) -> bool:
    """Is the run named in a claim file (``host@pid``) still running? Unknown hosts count as alive."""
    import socket
    host, _, pid = text.strip().rpartition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead_claims(folder: str) -> list[str]:
    """Remove claim files whose run is gone from this host (a kill between publish and the
    claim's release leaves one; a rerun that finds the output already done never takes that
    claim again, so nothing else would clear it). Returns the names removed."""
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(CLAIM_PREFIX)]
    except OSError:
        return removed
    for n in names:
        path = os.path.join(folder, n)
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                owner = fh.read(300)
        except OSError:
            continue
        if owner and not _owner_alive(owner):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(n)
    return removed


@contextlib.contextmanager
def claim(folder: str, name: str):
    """Hold the output name ``name`` in ``folder`` for the duration: an ``O_EXCL`` claim file.

    Taken before the audit and mapping are written, so a second publisher of
    the same name fails before it writes anything next to the first one's
    output. A claim whose process is gone from this host is taken over; one
    from another host (shared storage) blocks until removed by hand.
    """
    import socket
    path = os.path.join(folder, CLAIM_PREFIX + name.lower())  # lower: one claim per case-insensitive name
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            break
        except FileExistsError:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    owner = fh.read(300)
            except OSError:
                owner = ""
            if attempt == 0 and owner and not _owner_alive(owner) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            raise NameTaken(f"another run is publishing {name} into this folder (claim file"
                            f" {os.path.basename(path)}); nothing was published") from None
    try:
        try:
            os.write(fd, f"{socket.gethostname()}@{os.getpid()}".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise WsideidError(f"cannot claim the output name {name}: {exc.strerror or type(exc).__name__}") from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
