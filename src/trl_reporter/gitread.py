"""The code a run was started from, read from git within a time budget, never raising.

One ``git status`` gives the commit, the branch and whether the tree is dirty; a dirty tree adds
``git diff HEAD`` (its patch). A repository that cannot be read gives a reason code instead
(``not-a-checkout``, ``unsafe``, ``no-git``, ``no-commits``, ``timed-out``, ``failed``), and what
was read before a later call failed is kept. Each git call is bounded by what is left of the
budget, and stopped with every process it started.

The patch is the user's ``git diff HEAD`` made plain, whatever their git config says (prefixes
``a/`` and ``b/``, no renames, no textconv or external diff), redacted, and capped at
:data:`MAX_PATCH_BYTES` in all. A binary file, or one that is not UTF-8 text, is named and left
out (its bytes cannot be redacted), and so is what does not fit; untracked files are named.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .origins import Code
from .redact import redact_text

GIT_TIMEOUT = 2.0
MAX_PATCH_BYTES = 1 << 20
MAX_NAMES = 1000  # untracked or left-out files named, at most
_STATUS_LIMIT = 8 << 20
# The user's config must not change what the patch looks like, nor run a program.
_PLAIN = ["-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", "-c", "core.quotePath=false"]
_DIFF = ["diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"]
# The part of a remote URL that names the repository on GitHub or the Hub.
_REMOTE = re.compile(
    r"^(?:https?://(?:[^@/]+@)?|ssh://git@|git@)(?P<host>github\.com|huggingface\.co|hf\.co)[:/](?P<path>.+?)(?:\.git)?/?$"
)
_FILE_START = re.compile(rb"^diff --git ", re.M)


class Clock:
    def __init__(self, budget: float) -> None:
        self.end = time.monotonic() + budget

    def timeout(self) -> float:
        """How long the next git call may take: what is left of the budget (at least a little,
        at most :data:`GIT_TIMEOUT`)."""
        return max(0.05, min(GIT_TIMEOUT, self.end - time.monotonic()))


def git(args: Sequence[str], cwd: Path, clock: Clock, *, limit: int = 1 << 16) -> tuple[int, bytes]:
    """``git args`` in ``cwd`` (its error output mixed in): (exit status, at most ``limit`` + 1
    bytes of output). Raises ``TimeoutError`` when it does not end in time, ``FileNotFoundError``
    without git. Whatever it started is stopped with it (its own process group)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    proc = subprocess.Popen(
        ["git", *_PLAIN, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if args[0] == "status" else subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out = _read(proc, limit, clock.timeout())
        status = proc.poll()
        return (status if status is not None else -9), out
    finally:
        _stop(proc)


def _read(proc: subprocess.Popen[bytes], limit: int, timeout: float) -> bytes:
    """At most ``limit`` + 1 bytes of ``proc``'s output, until it ends (or only a process it
    left behind still holds the pipe); ``TimeoutError`` after ``timeout``."""
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while size <= limit:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("git did not answer in time")
            if not selector.select(min(left, 0.05)):
                # git ended (all it wrote is in the pipe by now); a child of it may keep the
                # pipe open, so stop once nothing more is there to read.
                if proc.poll() is not None and not selector.select(0):
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size <= limit:
        try:
            proc.wait(max(0.01, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise TimeoutError("git did not answer in time") from None
    return b"".join(chunks)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def code(cwd: Path, budget: float, exclude: Sequence[Path] = ()) -> tuple[Code, str | None]:
    """The code in ``cwd``: commit, branch, dirty tree, and the patch of its uncommitted changes
    (redacted, capped), if any. ``exclude``: folders training writes itself (the report, the
    output directory), which make no tree dirty."""
    clock = Clock(budget)
    spec = _pathspec(cwd, exclude)
    try:
        status_args = ["status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z", *spec]
        _, out = git(status_args, cwd, clock, limit=_STATUS_LIMIT)
    except FileNotFoundError:
        return Code(reason="no-git"), None
    except TimeoutError:
        return Code(reason="timed-out"), None
    except OSError:
        return Code(reason="failed"), None
    start = out.find(b"# branch.oid ")
    if start < 0:
        return Code(reason="unsafe" if b"dubious ownership" in out else "not-a-checkout"), None
    found = _parse_status(out[start:])
    if found.commit is None:
        found.reason = "no-commits"
        return found, None
    patch = None
    try:
        found.commit_url = _commit_url(cwd, found.commit, clock)
        if found.dirty:
            patch = _patch(cwd, found, clock, spec)
    except OSError:  # TimeoutError included: keep what was read
        pass
    if patch is not None:
        found.patch = True
        found.patch_id = hashlib.sha256(patch.encode()).hexdigest()[:12]
    return found, patch


def _pathspec(cwd: Path, exclude: Sequence[Path]) -> list[str]:
    """The whole tree (``:/``, wherever in it training started), but the excluded folders that
    lie inside it (the report folder is at the top of a checkout, even when training starts in
    a subfolder)."""
    top = _top(Path(os.path.abspath(cwd)))
    parts = []
    for path in exclude:
        if top is None:
            break
        try:
            relative = Path(os.path.abspath(path)).relative_to(top)
        except ValueError:
            continue
        if str(relative) not in ("", "."):
            parts.append(f":(top,exclude,literal){relative.as_posix()}")
    return ["--", ":/", *parts] if parts else []


def _top(start: Path) -> Path | None:
    """The top of the checkout ``start`` is in (where ``.git`` is), found with a few ``stat``."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _parse_status(out: bytes) -> Code:
    found = Code()
    for entry in out.split(b"\0"):
        text = entry.decode("utf-8", "surrogateescape")
        if text.startswith("# branch.oid "):
            oid = text.split(" ", 2)[2]
            found.commit = oid if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", oid) else None
        elif text.startswith("# branch.head "):
            head = text.split(" ", 2)[2]
            found.branch = None if head == "(detached)" else redact_text(head)[:200]
        elif text.startswith("? "):
            found.untracked_count += 1
            if len(found.untracked) < MAX_NAMES:
                found.untracked.append(redact_text(text[2:])[:1000])
            found.dirty = True
        elif text[:2] in ("1 ", "2 ", "u "):
            found.dirty = True
    return found


def _commit_url(cwd: Path, commit: str, clock: Clock) -> str | None:
    status, out = git(["config", "--get", "remote.origin.url"], cwd, clock)
    match = _REMOTE.match(out.decode("utf-8", "replace").strip()) if status == 0 else None
    if match is None:
        return None
    path = match.group("path")
    if match.group("host") == "github.com":
        return f"https://github.com/{path}/commit/{commit}"
    return f"https://huggingface.co/{path}/commit/{commit}"


def _patch(cwd: Path, found: Code, clock: Clock, spec: list[str]) -> str | None:
    """The patch; sets ``found.patch_files`` (files whose change it holds), ``found.left_out``
    and ``found.patch_cut``."""
    kept: list[tuple[str, str]] = []  # (file, its redacted diff)
    notes: list[str] = []
    names: set[str] = set()

    def take(blocks: list[bytes]) -> None:
        for block in blocks:
            name = _name(block)
            names.add(name)
            try:
                decoded = block.decode("utf-8")
            except UnicodeDecodeError:
                notes.append(f"# left out (not UTF-8 text): {name}")
                continue
            if "\nBinary files " in decoded or "\nGIT binary patch" in decoded:
                notes.append(f"# left out (a binary file): {name}")
                continue
            kept.append((name, redact_text(decoded)))

    blocks, partial = _diff(cwd, clock, spec, MAX_PATCH_BYTES)
    take(blocks)
    if partial is not None:
        found.patch_cut = True
        status, out = git([*_DIFF, "--name-only", "-z", *spec], cwd, clock)
        listed = [n.decode("utf-8", "surrogateescape") for n in out.split(b"\0") if n] if status == 0 else []
        # The file the limit fell in is too big; the changes after it may well fit: once more.
        rest = [n for n in listed if n not in names and n != partial][:MAX_NAMES]
        room = MAX_PATCH_BYTES - sum(len(b) for b in blocks)
        if rest and room > 0:
            take(_diff(cwd, clock, ["--", *(f":(top,literal){n}" for n in rest)], room)[0])
        notes += [f"# left out (the patch is capped at 1 MiB): {n}" for n in listed if n not in names]
    # Redaction may lengthen a file a little: what then no longer fits is named (a line of at
    # most 301 bytes each, kept room for), not kept.
    tail = [f"# untracked: {name}" for name in found.untracked]
    if found.untracked_count > len(found.untracked):
        tail.append(f"# untracked: {found.untracked_count - len(found.untracked)} more files")
    room = MAX_PATCH_BYTES - 301 * min(len(kept), MAX_NAMES) - len(_lines(notes + tail).encode())
    chosen: list[str] = []
    for name, text in kept:
        if len(text.encode()) > room:
            found.patch_cut = True
            notes.append(f"# left out (the patch is capped at 1 MiB): {name}")
            continue
        chosen.append(text)
        room -= len(text.encode())
    found.patch_files, found.left_out = len(chosen), len(notes)
    return ("".join(chosen) + _lines(notes + tail)) or None


def _diff(cwd: Path, clock: Clock, spec: list[str], limit: int) -> tuple[list[bytes], str | None]:
    """``git diff HEAD`` in blocks of one file each, at most ``limit`` bytes of them, and the
    file the limit fell in (whose block is left out), if it did."""
    _, raw = git([*_DIFF, "--src-prefix=a/", "--dst-prefix=b/", *spec], cwd, clock, limit=limit)
    starts = [m.start() for m in _FILE_START.finditer(raw)]
    blocks = [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)])]
    if len(raw) > limit:
        return blocks[:-1], (_name(blocks[-1]) if blocks else "")
    return blocks, None


def _lines(notes: list[str]) -> str:
    """The notes that end a patch, redacted: at most :data:`MAX_NAMES` lines of 300 characters."""
    return "".join(f"{redact_text(note)[:300]}\n" for note in notes[:MAX_NAMES])


def _name(block: bytes) -> str:
    """The file a block of ``git diff --no-renames`` is about (``diff --git a/<n> b/<n>``)."""
    header = block.split(b"\n", 1)[0][len(b"diff --git ") :].decode("utf-8", "surrogateescape")
    half = (len(header) - 5) // 2
    if half > 0 and header.startswith("a/") and header[2 + half : 5 + half] == " b/":
        return header[2 : 2 + half]
    return header
