"""What produced a run: its code (git), its command, and the machine, captured once.

Read at ``on_train_begin`` within a budget (:data:`BUDGET` in all, each ``git`` call at most
:data:`GIT_TIMEOUT`), never raising: a repository that cannot be read gives a reason code
instead (``not-a-checkout``, ``no-git``, ``no-commits``, ``timed-out``, ``failed``). Everything
that may hold a secret (the uncommitted diff, the command line) is redacted before it is kept.

The uncommitted diff (``git diff HEAD --binary`` plus the names of untracked files) is capped at
:data:`MAX_PATCH_BYTES`; a larger one is cut at a file boundary and marked as cut.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .machine import dataset_revision, hardware, model_revision, versions
from .origins import Code, Provenance
from .redact import REDACTED, clean_text, is_secret_field

BUDGET = 0.5
GIT_TIMEOUT = 2.0
MAX_PATCH_BYTES = 1 << 20
# NAME=value on a command line (an environment assignment, or --name=value) whose name says secret.
_SECRET_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]{1,100})=(?P<value>\S+)")
# The part of a remote URL that names the repository on GitHub or the Hub.
_REMOTE = re.compile(
    r"^(?:https?://(?:[^@/]+@)?|ssh://git@|git@)(?P<host>github\.com|huggingface\.co)[:/](?P<path>.+?)(?:\.git)?/?$"
)


class _Clock:
    def __init__(self, budget: float) -> None:
        self.end = time.monotonic() + budget

    def timeout(self) -> float:
        """How long the next git call may take: what is left of the budget, and at least a
        little, at most :data:`GIT_TIMEOUT`."""
        return max(0.05, min(GIT_TIMEOUT, self.end - time.monotonic()))


def _git(args: Sequence[str], cwd: Path, clock: _Clock, *, limit: int = 1 << 16) -> tuple[int, bytes]:
    """Run ``git args`` in ``cwd``: (exit status, at most ``limit`` bytes of its output). Raises
    ``TimeoutError`` when it does not end in time and ``FileNotFoundError`` without git."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    with subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            out = _read_limited(proc, limit, clock.timeout())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TimeoutError("git did not answer in time") from None
        return proc.returncode if proc.returncode is not None else -1, out


def _read_limited(proc: subprocess.Popen[bytes], limit: int, timeout: float) -> bytes:
    """Read at most ``limit`` + 1 bytes of ``proc``'s output within ``timeout`` (then stop it)."""
    import selectors

    assert proc.stdout is not None
    end = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while size <= limit:
            left = end - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            if not selector.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:
        proc.kill()
    try:
        proc.wait(max(0.05, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return b"".join(chunks)


def code(cwd: Path | None = None, *, budget: float = BUDGET, exclude: Sequence[Path] = ()) -> tuple[Code, str | None]:
    """The code in ``cwd`` (the working directory): commit, branch, dirty tree, and the patch of
    its uncommitted changes (redacted, capped), if any. What training writes itself (the report
    folder, the output directory: ``exclude``) does not make the tree dirty."""
    cwd = cwd or Path.cwd()
    clock = _Clock(budget)
    spec = _pathspec(cwd, exclude)
    try:
        status, out = _git(
            ["status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z", *spec], cwd, clock
        )
        if status != 0:
            return Code(reason="not-a-checkout"), None
        found = _parse_status(out)
        if found.commit is None:
            found.reason = "no-commits"
            return found, None
        found.commit_url = _commit_url(cwd, found.commit, clock)
        patch = None
        if found.dirty:
            patch, found.patch_cut = _patch(cwd, found.untracked, clock, spec)
            found.patch = patch is not None
        return found, patch
    except FileNotFoundError:
        return Code(reason="no-git"), None
    except TimeoutError:
        return Code(reason="timed-out"), None
    except OSError:
        return Code(reason="failed"), None


def _pathspec(cwd: Path, exclude: Sequence[Path]) -> list[str]:
    """``-- . :(exclude)<path>...`` for the excluded folders inside ``cwd``."""
    parts = []
    for path in exclude:
        try:
            relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(cwd))
        except ValueError:
            continue
        if str(relative) not in ("", "."):
            parts.append(f":(exclude){relative.as_posix()}")
    return ["--", ".", *parts] if parts else []


def _parse_status(out: bytes) -> Code:
    found = Code()
    for entry in out.split(b"\0"):
        text = entry.decode("utf-8", "surrogateescape")
        if text.startswith("# branch.oid "):
            oid = text.split(" ", 2)[2]
            found.commit = None if oid == "(initial)" else oid
        elif text.startswith("# branch.head "):
            head = text.split(" ", 2)[2]
            found.branch = None if head == "(detached)" else clean_text(head)
        elif text.startswith("? "):
            found.untracked.append(clean_text(text[2:]))
            found.dirty = True
        elif text[:2] in ("1 ", "2 ", "u "):
            found.dirty = True
    return found


def _commit_url(cwd: Path, commit: str, clock: _Clock) -> str | None:
    status, out = _git(["config", "--get", "remote.origin.url"], cwd, clock)
    match = _REMOTE.match(out.decode("utf-8", "replace").strip()) if status == 0 else None
    if match is None:
        return None
    path = match.group("path")
    if match.group("host") == "github.com":
        return f"https://github.com/{path}/commit/{commit}"
    return f"https://huggingface.co/{path}/commit/{commit}"


def _patch(cwd: Path, untracked: list[str], clock: _Clock, spec: list[str]) -> tuple[str | None, bool]:
    diff = ["diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", *spec]
    status, out = _git(diff, cwd, clock, limit=MAX_PATCH_BYTES)
    if status not in (0, -9, -15) and not out:
        return None, False
    cut = len(out) > MAX_PATCH_BYTES
    left_out: list[str] = []
    if cut:
        out = out[:MAX_PATCH_BYTES]
        boundary = out.rfind(b"\ndiff --git ")
        out = out[: boundary + 1] if boundary > 0 else b""
        left_out = _left_out(cwd, clock, spec, out)
    text = redact_text(out.decode("utf-8", "surrogateescape"))
    text += "".join(f"# left out (the patch is capped at 1 MiB): {clean_text(name)}\n" for name in left_out)
    if untracked:
        text += "".join(f"# untracked: {name}\n" for name in untracked)
    return clean_text(text), cut


def _left_out(cwd: Path, clock: _Clock, spec: list[str], kept: bytes) -> list[str]:
    """The changed files that a cut patch does not hold."""
    status, out = _git(["diff", "HEAD", "--name-only", "-z", *spec], cwd, clock)
    names = [n.decode("utf-8", "surrogateescape") for n in out.split(b"\0") if n] if status == 0 else []
    return [n for n in names if f"diff --git a/{n} ".encode("utf-8", "surrogateescape") not in kept]


def redact_text(text: str) -> str:
    """Secrets out of free text: tokens, URL passwords, and ``NAME=value`` where the name says
    it is a secret (``HF_TOKEN=…``, ``--api-key=…``)."""
    # Linear on any input (a 1 MB minified line included): a name starts where no name character
    # precedes it, and is at most 100 characters long.
    text = _SECRET_ASSIGNMENT.sub(
        lambda m: f"{m.group('name')}={REDACTED}" if _secret_name(m.group("name")) else m.group(0), text
    )
    return clean_text(text)


def _secret_name(name: str) -> bool:
    """``HF_TOKEN``, ``--hub-token``, ``WANDB_API_KEY``: yes; ``pad_token``, ``max_new_tokens``: no."""
    return is_secret_field(name.lstrip("-").replace("-", "_").replace(".", "_"))


def command(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The command line as launched, redacted: the launcher when the environment names one
    (torchrun, accelerate, ``uv run`` inside an HF Job, read from the parent process), else the
    interpreter's own (``python -m pkg ...`` included). ``argv`` replaces ``sys.argv`` (tests).
    A value after a flag that names a secret is redacted too."""
    words = _launcher(environ) if argv is None else None
    if words is None:
        words = _interpreted(list(sys.argv if argv is None else argv), list(getattr(sys, "orig_argv", [])))
    return redact_words(_short(words))


def _interpreted(argv: list[str], orig: list[str]) -> list[str]:
    """The interpreter's command line: its own options and ``-m module`` from ``sys.orig_argv``,
    then ``sys.argv`` (which a program may have rewritten, and which then wins)."""
    args = argv[1:]
    if len(orig) > len(args) and orig[len(orig) - len(args) :] == args:
        return [*orig[: len(orig) - len(args)], *args]
    return [sys.executable, *argv]


def _short(words: list[str]) -> list[str]:
    """``torchrun ...`` for ``/venv/bin/python /venv/bin/torchrun ...`` (a launcher, or any
    console script beside the interpreter); ``python`` for ``/usr/bin/python3.11``: the programs
    by name, the arguments as given."""
    if len(words) > 1 and Path(words[0]).name.startswith("python"):
        script = Path(words[1])
        beside = script.suffix == "" and script.parent in (Path(words[0]).parent, Path(sys.executable).parent)
        if script.name in _LAUNCHERS or (beside and script.is_absolute()):
            words = words[1:]
    return [Path(words[0]).name, *words[1:]] if words else words


def redact_words(words: Sequence[str]) -> list[str]:
    shown: list[str] = []
    hide_next = False
    for word in words:
        if hide_next:
            shown.append(REDACTED)
            hide_next = False
            continue
        hide_next = word.startswith("-") and "=" not in word and _secret_name(word)
        shown.append(redact_text(word))
    return shown


_LAUNCHERS = ("torchrun", "accelerate", "uv", "deepspeed")


def _launcher(environ: Mapping[str, str]) -> list[str] | None:
    """The parent's command line when a launcher started this process, else ``None``: torchrun
    and ``accelerate launch`` say so in the environment; ``uv run`` (as in ``hf jobs uv run``)
    sets ``UV`` for every process below it, so there the parent must be uv itself."""
    elastic = any(environ.get(v) for v in ("TORCHELASTIC_RUN_ID", "ACCELERATE_MIXED_PRECISION"))
    if not elastic and not environ.get("UV"):
        return None
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w.decode("utf-8", "surrogateescape") for w in raw.split(b"\0") if w]
    if not words or not (elastic or _short(words)[0] == "uv"):
        return None
    return words


def notebook(environ: Mapping[str, str] = os.environ) -> str | None:
    """The notebook's name, where it can be known: Jupyter's ``JPY_SESSION_NAME``, or VS Code's
    ``__vsc_ipynb_file__`` in the kernel's namespace."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None:
        return None
    name = environ.get("JPY_SESSION_NAME") or getattr(shell, "user_ns", {}).get("__vsc_ipynb_file__")
    return clean_text(Path(str(name)).name) if name else "a notebook"


def capture(
    device_type: str,
    model: object,
    dataset: object,
    environ: Mapping[str, str] = os.environ,
    *,
    exclude: Sequence[Path] = (),
) -> tuple[Provenance, str | None]:
    """Everything a run records of what produced it, and its uncommitted patch: once, at its
    start, in about :data:`BUDGET` (git is the only part that can be slow, and it is bounded)."""
    started = time.monotonic()
    found, patch = code(exclude=exclude)
    revision, fingerprint = dataset_revision(dataset)
    in_notebook = notebook(environ)
    record = Provenance(
        code=found,
        command=[] if in_notebook else command(environ=environ),
        notebook=in_notebook,
        versions=versions(),
        model_revision=model_revision(model),
        dataset_revision=revision,
        dataset_fingerprint=fingerprint,
        hardware=[(k, str(v)) for k, v in hardware(device_type, environ).items()],
    )
    record.seconds = time.monotonic() - started
    return record, patch
