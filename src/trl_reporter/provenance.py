"""What produced a run: its code (git, see :mod:`~trl_reporter.gitread`), its command, its
versions and its machine, captured once at ``on_train_begin`` within :data:`BUDGET`, never
raising. Everything that may hold a secret (the uncommitted diff, the command line, file names)
is redacted before it is kept.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import gitread
from .machine import dataset_revision, hardware, model_revision, versions
from .origins import Code, Provenance
from .redact import clean_text, redact_words

BUDGET = 0.5
MAX_WORDS = 1000  # a command line's words kept, at most


def code(cwd: Path | None = None, *, budget: float = BUDGET, exclude: Sequence[Path] = ()) -> tuple[Code, str | None]:
    """The code in ``cwd`` (the working directory) and its uncommitted patch: see
    :func:`trl_reporter.gitread.code`."""
    return gitread.code(cwd or Path.cwd(), budget, exclude)


def command(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The command line as launched, redacted: the launcher when the environment names one
    (torchrun, accelerate, ``uv run`` inside an HF Job, read from the parent process), else the
    interpreter's own (``python -m pkg ...`` included). ``argv`` replaces ``sys.argv`` (tests).
    A value after a flag that names a secret is redacted too."""
    words = _launcher(environ) if argv is None else None
    if words is None:
        words = _interpreted(list(sys.argv if argv is None else argv), list(getattr(sys, "orig_argv", [])))
    words = _short(words)
    if len(words) > MAX_WORDS:
        words = [*words[:MAX_WORDS], f"... ({len(words) - MAX_WORDS} more words)"]
    return redact_words(words)


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
