"""Where a report travels: a directory, a Hub repo, or (to read from) a Storage Bucket.

``ReportCallback(publish=...)``, ``$TRL_REPORTER_PUBLISH`` and ``trl-report pull SOURCE`` name one
of these with the same words:

- a directory path, such as a mounted bucket volume (``/reports/training_reports``) or NFS;
- ``hf://datasets/<namespace>/<name>[/<path>]``, a Hub dataset repo;
- ``hf://<namespace>/<name>[/<path>]`` (or ``hf://models/...``), a Hub model repo;
- ``hf://buckets/<namespace>/<name>[/<path>]``, a Storage Bucket, for reading only: inside a Job,
  publish to a bucket by mounting it (``-v hf://buckets/<ns>/<bucket>:/reports``) and naming the
  directory.

The path inside a repo or bucket holds the same layout as ``training_reports/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import DestinationError
from .naming import is_safe_key
from .urls import _HUB_ID_RE

PUBLISH_ENV = "TRL_REPORTER_PUBLISH"


@dataclass(frozen=True)
class Directory:
    path: Path

    @property
    def label(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Remote:
    """A Hub repo (``kind`` "model" or "dataset") or a Storage Bucket (``kind`` "bucket")."""

    kind: str
    repo_id: str
    path: str = ""  # inside the repo, "" for its root; never absolute, never with ".."

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @property
    def label(self) -> str:
        prefix = {"model": "", "dataset": "datasets/", "bucket": "buckets/"}[self.kind]
        return f"hf://{prefix}{self.repo_id}" + (f"/{self.path}" if self.path else "")

    def in_repo(self, relative: str) -> str:
        """The repo path of a file at ``relative`` in the report layout."""
        return f"{self.path}/{relative}" if self.path else relative


Destination = Directory | Remote


def parse(spec: str | os.PathLike[str], *, reading: bool = False) -> Destination:
    """The destination ``spec`` names. Raises :class:`DestinationError` for one that cannot be
    (a Space, a bucket to publish to, a repo id or path that is not one)."""
    if not isinstance(spec, str):
        return Directory(Path(spec).expanduser().absolute())
    text = spec.strip()
    if not text:
        raise DestinationError("an empty destination")
    if not text.startswith("hf://"):
        if "://" in text:
            raise DestinationError(f"{text!r}: only directories and hf:// destinations are supported")
        return Directory(Path(text).expanduser().absolute())
    parts = [p for p in text[len("hf://") :].split("/")]
    kind = {"datasets": "dataset", "models": "model", "buckets": "bucket", "spaces": "space"}.get(parts[0], "model")
    if parts[0] in ("datasets", "models", "buckets", "spaces"):
        parts = parts[1:]
    if kind == "space":
        raise DestinationError(f"{text!r}: a Space cannot hold a report; use a dataset repo (hf://datasets/...)")
    if kind == "bucket" and not reading:
        raise DestinationError(
            f"{text!r}: to publish into a Storage Bucket, mount it as a volume "
            "(hf jobs run -v hf://buckets/<namespace>/<bucket>:/reports ...) and publish to the directory, "
            "e.g. publish='/reports/training_reports'; `trl-report pull` reads hf://buckets/... directly"
        )
    if len(parts) < 2 or not all(parts[:2]):
        raise DestinationError(f"{text!r}: expected hf://[datasets/]<namespace>/<name>[/<path>]")
    repo_id = "/".join(parts[:2])
    if not _HUB_ID_RE.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise DestinationError(f"{text!r}: {repo_id!r} is not a Hub repo id")
    inner = [p for p in parts[2:] if p]
    if any(not is_safe_key(p) for p in inner):
        raise DestinationError(f"{text!r}: the path inside the repo may use letters, digits, '.', '_' and '-' only")
    return Remote(kind, repo_id, "/".join(inner))


def chosen_destination(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] = os.environ
) -> Destination | None:
    """The destination to publish to: the argument, else ``$TRL_REPORTER_PUBLISH``, else none."""
    chosen = explicit if explicit not in (None, "") else environ.get(PUBLISH_ENV, "").strip() or None
    return parse(chosen) if chosen is not None else None
