"""A report's files to and from the Hub, through the real ``huggingface_hub`` client.

A remote copy of ``training_reports/`` is read into a local folder (only the saved state, by the
same layout, each path checked before anything is fetched) and written back as one commit of the
files whose bytes differ from the remote's. The client has no timeout of its own (with the network
down it gives up after about 23 s of retries), so every call here runs on a background thread that
the caller stops waiting for at its deadline; retries (409, 429, 5xx, with jitter) stop at it too.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from . import _fs, urls
from .destinations import Remote
from .errors import DestinationError
from .naming import is_safe_key

logger = logging.getLogger(__name__)

T = TypeVar("T")
# The saved state, by layout: <slug>/experiment.json, runs/<key>.json, runs/<key>.patch,
# history/<key>.json and evals/<key>/<name>.json under .trl-reporter/.
_STATE_FILE = re.compile(
    r"\.trl-reporter/(?P<slug>[^/]+)/(?:experiment\.json|(?:runs|history)/(?P<key>[^/]+)\.json|runs/(?P<patch>[^/]+)\.patch"
    r"|evals/(?P<run>[^/]+)/(?P<name>[^/]+)\.json)"
)
MAX_FILE_BYTES = 4_000_000
_ATTEMPTS = 5


def blob_id(data: bytes) -> str:
    """The git blob id the Hub lists for a (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def unusable(*, reading: bool = False, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the Hub cannot be used now (offline; no token, to write), or ``None``. Nothing is sent
    anonymously: the client would try a commit without a token."""
    import huggingface_hub

    if huggingface_hub.is_offline_mode() or environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    if not reading and huggingface_hub.get_token() is None:
        return "no Hugging Face token (log in with `hf auth login`, or set HF_TOKEN)"
    return None


def api(environ: Mapping[str, str] = os.environ) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=urls.endpoint(environ))


def state_path(relative: str, slugs: Iterable[str] | None = None) -> bool:
    """Whether ``relative`` is a state file of the layout (of one of ``slugs``), every part of
    it a safe name: only such paths are fetched."""
    match = _STATE_FILE.fullmatch(relative)
    if match is None:
        return False
    parts = [p for p in match.groupdict().values() if p is not None]
    if not all(is_safe_key(p) for p in parts):
        return False
    return slugs is None or match.group("slug") in set(slugs)


class Deadline:
    """When the wait for a push ends (``at``, monotonic; never while training runs, until the end
    is waited for). A pause between retries ends early when the deadline is set, so a long
    ``Retry-After`` during training never holds up the final push."""

    def __init__(self, at: float = math.inf) -> None:
        self.at = at
        self._changed = threading.Event()

    def set(self, at: float) -> None:
        self.at = at
        self._changed.set()

    def clear(self) -> None:
        self.at = math.inf

    def sleep(self, seconds: float) -> None:
        self._changed.clear()
        self._changed.wait(max(0.0, min(seconds, self.at - time.monotonic())))


def retrying(call: Callable[[], T], deadline: Deadline) -> T:
    """``call()``, again after a pause with jitter on 409 (another commit in progress), 429 and
    5xx, until it succeeds, ``_ATTEMPTS`` are spent, or the pause would pass the ``deadline``."""
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(_ATTEMPTS):
        try:
            return call()
        except HfHubHTTPError as exc:
            response = getattr(exc, "response", None)
            status = getattr(response, "status_code", None) or 0
            if not (status in (409, 429) or status >= 500) or attempt == _ATTEMPTS - 1:
                raise
            pause = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)
            after = _retry_after(response)
            pause = max(pause, after) if after is not None else pause
            if time.monotonic() + pause > deadline.at:
                raise
            logger.debug("trl-reporter: the Hub answered %s; trying again in %.1f s", status, pause)
            deadline.sleep(pause)
    raise AssertionError("unreachable")


def _retry_after(response: Any) -> float | None:
    try:
        return min(60.0, float(response.headers.get("Retry-After")))
    except (AttributeError, TypeError, ValueError):
        return None


def listing(remote: Remote, client: Any, deadline: Deadline) -> dict[str, str]:
    """Every file of the remote report folder: layout path -> blob id (empty if there is none).
    Files larger than a state file can be are left out, so they are never fetched."""
    from huggingface_hub.errors import BucketNotFoundError, EntryNotFoundError, RepositoryNotFoundError

    prefix = f"{remote.path}/" if remote.path else ""
    try:
        if remote.kind == "bucket":
            entries = retrying(
                lambda: list(client.list_bucket_tree(remote.repo_id, prefix=remote.path or None, recursive=True)),
                deadline,
            )
        else:
            entries = retrying(
                lambda: list(
                    client.list_repo_tree(
                        remote.repo_id, path_in_repo=remote.path or None, recursive=True, repo_type=remote.kind
                    )
                ),
                deadline,
            )
    except (BucketNotFoundError, EntryNotFoundError, RepositoryNotFoundError):
        return {}
    found = {}
    for entry in entries:
        path = getattr(entry, "path", "")
        size = getattr(entry, "size", 0) or 0
        if getattr(entry, "type", "file") == "file" and path.startswith(prefix) and size <= MAX_FILE_BYTES:
            found[path[len(prefix) :]] = str(getattr(entry, "blob_id", None) or getattr(entry, "xet_hash", "") or "")
    return found


def prune(root: Path, files: Mapping[str, str], slugs: Iterable[str]) -> int:
    """Remove from a local copy the state files (of ``slugs``) that the remote no longer has, so
    that a run deleted there is not brought back; returns how many."""
    removed = 0
    for slug in slugs:
        for path in sorted(p for p in (root / ".trl-reporter" / slug).rglob("*") if p.is_file()):
            relative = str(path.relative_to(root))
            if relative not in files and state_path(relative, [slug]):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def fetch_state(
    remote: Remote, root: Path, files: Mapping[str, str], client: Any, deadline: Deadline, slugs: Iterable[str] | None
) -> int:
    """Bring the remote's state files (of ``slugs``, else all) into ``root`` where they differ;
    returns how many were fetched. A file larger than a state file can be is skipped."""
    wanted = [rel for rel in sorted(files) if state_path(rel, slugs)]
    fetched = 0
    with tempfile.TemporaryDirectory(prefix="trl-reporter-fetch-") as scratch:
        for rel in wanted:
            local = root / rel
            current = _fs.read_regular(local, MAX_FILE_BYTES)
            if current is not None and files[rel] and blob_id(current) == files[rel]:
                continue
            downloaded = Path(scratch) / "file"
            _download(remote, rel, downloaded, client, deadline)
            data = _fs.read_regular(downloaded, MAX_FILE_BYTES)
            downloaded.unlink(missing_ok=True)
            if data is None:
                logger.warning("trl-reporter: skipping %s from %s: not a file of at most 4 MB", rel, remote.label)
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            if local.parent.is_symlink():
                raise DestinationError(f"refusing to write through the symlink {str(local.parent)!r}")
            _fs.atomic_write(local, data, durable=False)
            fetched += 1
    return fetched


def _download(remote: Remote, rel: str, to: Path, client: Any, deadline: Deadline) -> None:
    if remote.kind == "bucket":
        # A bucket file's plain route (as HfFileSystem reads it without Xet): state files are small.
        from urllib.parse import quote

        from huggingface_hub.file_download import http_get

        url = f"{client.endpoint}/buckets/{remote.repo_id}/resolve/{quote(remote.in_repo(rel))}"

        def get() -> None:
            with to.open("wb") as fh:
                http_get(url, fh, headers=client._build_hf_headers())

        retrying(get, deadline)
        return
    with tempfile.TemporaryDirectory(prefix="trl-reporter-dl-") as where:
        path = retrying(
            lambda: client.hf_hub_download(remote.repo_id, remote.in_repo(rel), repo_type=remote.kind, local_dir=where),
            deadline,
        )
        os.replace(path, to)


def upload(
    remote: Remote,
    root: Path,
    relatives: Iterable[str],
    files: Mapping[str, str],
    client: Any,
    deadline: Deadline,
    message: str,
) -> int:
    """One commit of the files under ``root`` whose bytes the remote lacks; returns how many
    (0: no commit). A repo that does not exist yet is created, private."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import RepositoryNotFoundError

    operations = []
    for rel in sorted(relatives):
        data = _fs.read_regular(root / rel, MAX_FILE_BYTES)
        if data is not None and blob_id(data) != files.get(rel):
            operations.append(CommitOperationAdd(path_in_repo=remote.in_repo(rel), path_or_fileobj=data))
    if not operations:
        return 0

    def commit() -> Any:
        return client.create_commit(
            remote.repo_id, operations, commit_message=message, repo_type=remote.kind, num_threads=1
        )

    try:
        retrying(commit, deadline)
    except RepositoryNotFoundError:
        retrying(
            lambda: client.create_repo(remote.repo_id, repo_type=remote.kind, private=True, exist_ok=True),
            deadline,
        )
        retrying(commit, deadline)
    return len(operations)
