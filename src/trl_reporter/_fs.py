"""Crash-safe file primitives: atomic replace and the cleanup of what a crash leaves behind.

A kill during a plain ``open("w")`` write leaves a truncated file; writing a temporary file in the
same directory, fsyncing it and ``os.replace``-ing it over the target leaves either the old or the
new file, never a torn one. ``os.replace`` also replaces a symlink planted at the target instead
of writing through it.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import os
import secrets
import socket
import stat
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
# Temporary files older than this are debris whatever wrote them (a write takes milliseconds).
_STALE_TMP_SECONDS = 300.0


def host_tag() -> str:
    """A short, file-name-safe tag of this host, so cleanup only judges pids of its own host."""
    return format(zlib.crc32(socket.gethostname().encode("utf-8", "replace")), "08x")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def atomic_write(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that readers and crashes see all of it or none
    of it.

    ``durable=False`` skips the fsyncs, for files that are only a cache (and check their own
    content): after a power loss they may be missing or torn, which the cache then ignores."""
    tmp = path.with_name(f".{path.name}.{host_tag()}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Lone surrogates (undecodable file names) cannot be UTF-8: keep them as \udcff escapes
            # rather than lose the whole write.
            fh.write(data if isinstance(data, bytes) else data.encode("utf-8", "backslashreplace"))
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform or filesystem.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def clean_temp_files(directory: Path, *, now: float | None = None) -> int:
    """Remove temporary files that a killed writer left in ``directory``. Returns how many."""
    now = time.time() if now is None else now
    mine = host_tag()
    removed = 0
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)]
    except OSError:
        return 0
    for path in candidates:
        parts = path.name[: -len(TMP_SUFFIX)].rsplit(".", 3)
        try:
            tag, pid = parts[-3], int(parts[-2])
            stale = (tag == mine and not pid_alive(pid)) or now - path.lstat().st_mtime > _STALE_TMP_SECONDS
        except (IndexError, ValueError, OSError):
            continue
        if stale:
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


# No state file trl-reporter writes comes near this; a larger one is not read at all.
MAX_STATE_BYTES = 32 * 1024 * 1024


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes; ``None`` for anything else: a
    missing file, a symlink (never followed: saved state may plant one to ``/dev/zero`` or a file
    outside the project), a device or a FIFO (opened without blocking, then refused), or a file
    that is, or grows while it is read, larger than ``limit``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def read_json(path: Path, *, limit: int = MAX_STATE_BYTES) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` for anything else (missing, not a regular file, not
    JSON, not an object, nested too deeply to parse, larger than ``limit`` bytes)."""
    raw = read_regular(path, limit)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


_CODE: list[str] = []


def code_digest() -> str:
    """A digest of every module of this package, once per process: what every cache of derived
    data (facts, rendered parts, charts) depends on besides its input, so that no upgrade or edit of
    trl-reporter ever serves what older code made."""
    if not _CODE:
        hasher = hashlib.sha256()
        for module in sorted(Path(__file__).parent.glob("*.py")):
            hasher.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
        _CODE.append(hasher.hexdigest())
    return _CODE[0]


# Twice the coarsest common timestamp resolution (FAT, some network filesystems): a file whose
# times are this close to now may be written again within the same tick, unseen ("racily clean",
# as git calls it). Caches never trust such a file's identity.
RACY_NS = 2_000_000_000


def racy(*times_ns: int) -> bool:
    """Whether a file with these modification or change times may still change unseen."""
    return time.time_ns() - max(times_ns, default=0) < RACY_NS


# Cache files whose writing waits for the process to exit: path -> what to write.
_LATER: dict[str, Callable[[], str | bytes]] = {}
_LATER_REGISTERED: list[bool] = []


def write_cache(path: Path, make: Callable[[], str | bytes], *, now: bool) -> None:
    """Write a cache file (not durably: a cache checks its own content), ``now`` or when the
    process exits, whichever the caller judges cheaper; the latest ``make`` for a path wins. A
    process killed before it exits leaves the previous file, which costs the next one a little
    work, never a wrong answer. A file that cannot be written is left as it was."""
    _LATER[str(path)] = make
    if now:
        flush_caches(str(path))
    elif not _LATER_REGISTERED:
        _LATER_REGISTERED.append(True)
        atexit.register(flush_caches)


def flush_caches(only: str | None = None) -> None:
    """Write the cache files waiting for exit (or only the one at ``only``)."""
    for name in [only] if only is not None else list(_LATER):
        make = _LATER.pop(name, None)
        if make is None:
            continue
        try:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(Path(name), make(), durable=False)
        except (OSError, ValueError):
            pass


def user_cache(environ: Mapping[str, str] = os.environ) -> Path:
    """This user's cache folder for trl-reporter: ``$XDG_CACHE_HOME/trl-reporter``, else
    ``~/.cache/trl-reporter``. Local bookkeeping, never inside a project."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trl-reporter"
