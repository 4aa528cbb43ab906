"""Where reports go and what they are called.

Pure functions: the project root and report directory, the experiment and run names, and the
file-name slugs that keep every report inside its directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from .redact import clean_text

REPORT_DIR_NAME = "training_reports"
DEFAULT_PROJECT = "huggingface"
DEFAULT_OUTPUT_DIR = "trainer_output"

_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_SAFE_KEY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")
_MAX_SLUG = 80
_MAX_KEY = 120
# Names Windows refuses as file names, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def project_root(start: Path | None = None) -> Path:
    """The nearest ancestor of ``start`` (the working directory) with ``.git`` or ``pyproject.toml``."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").is_file():
            return candidate
    return start


def report_dir(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The explicit directory, else ``$TRL_REPORTER_DIR``, else ``<project root>/training_reports``."""
    chosen = explicit if explicit not in (None, "") else environ.get("TRL_REPORTER_DIR") or None
    if chosen is not None:
        return Path(chosen).expanduser().resolve()
    return project_root() / REPORT_DIR_NAME


def is_safe_key(key: object) -> bool:
    """Whether ``key`` can be a file-name stem as it is: ASCII letters, digits, ``.``, ``_`` and
    ``-``, starting with a letter or digit (so never ``.`` or ``..``), not ending in a dot, not a
    name Windows reserves, and short.

    This one check decides both whether a user's name is used unchanged by :func:`slug` and
    whether a key read from a saved file (a run id, an evaluation file) may become a path.
    """
    return (
        isinstance(key, str)
        and len(key) <= _MAX_KEY
        and _SAFE_KEY_RE.fullmatch(key) is not None
        and key.lower().split(".")[0] not in _RESERVED
    )


def slug(name: str, *, max_length: int = _MAX_SLUG) -> str:
    """A safe file name for ``name``, with any secret in it redacted first.

    A name that is already safe is used as it is. Any other name is cleaned up and gets a short
    hash of the original, so two different names never map to the same file by accident.
    """
    name = clean_text(name)
    text = unicodedata.normalize("NFKC", name)
    cleaned = _UNSAFE_RE.sub("-", text).strip(".-_")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:max_length].rstrip(".-_")
    if cleaned == name and is_safe_key(cleaned):
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'unnamed'}-{digest}"


def experiment_name(
    explicit: str | None,
    *,
    project: str | None,
    output_dir: str | None,
    model_name: str | None,
    trainer_kind: str,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """Explicit value, ``$TRL_REPORTER_EXPERIMENT``, a non-default ``args.project``, the
    ``output_dir`` basename, or ``<model name>-<trainer kind>``, in that order."""
    for candidate in (explicit, environ.get("TRL_REPORTER_EXPERIMENT")):
        if candidate and candidate.strip():
            return candidate.strip()
    if project and project != DEFAULT_PROJECT:
        return project
    if output_dir:
        base = Path(str(output_dir).rstrip("/\\")).name
        if base and base != DEFAULT_OUTPUT_DIR:
            return base
    short = (model_name or "model").rstrip("/").split("/")[-1] or "model"
    return f"{short}-{trainer_kind}"


def trainer_kind(trainer_class: str) -> str:
    """``SFTTrainer`` -> ``sft``, ``GRPOTrainer`` -> ``grpo``, ``Trainer`` -> ``trainer``."""
    stem = trainer_class[: -len("Trainer")] if trainer_class.endswith("Trainer") else trainer_class
    return stem.lower() or "trainer"
