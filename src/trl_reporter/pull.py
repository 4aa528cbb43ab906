"""``trl-report pull``: bring a report back from where training published it.

The source is a directory, a Hub repo or a Storage Bucket (see :mod:`~trl_reporter.destinations`).
A remote source's saved state is first fetched into a private folder (only state files of the
layout, each path checked), then merged into the local reports by :mod:`~trl_reporter.merge`, the
same rules as publishing, and the reports that changed are rendered with the local template.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import hubsync
from .destinations import Destination, Directory
from .errors import DestinationError, StoreError
from .merge import MergeResult, merge_tree
from .records import RunRecord
from .store import ExperimentStore, RenderFn

# --watch stops following a run that has said nothing for this long (killed without a word).
WATCH_GIVES_UP_AFTER = 3 * 300.0
_RENDER_TIMEOUT = 30.0


class Puller:
    """Pulls one source into one report directory, keeping what it fetched between pulls."""

    def __init__(self, source: Destination, root: Path, experiment: str | None, render: RenderFn) -> None:
        self.source = source
        self.root = root
        self.experiment = experiment
        self.render = render
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Puller:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()

    def pull(self) -> list[MergeResult]:
        """Merge the source into the local reports, render what changed; what changed."""
        if isinstance(self.source, Directory):
            if not self.source.path.is_dir():
                raise DestinationError(f"{self.source.label!r} is not a directory")
            state_root = self.source.path
        else:
            state_root = self._fetch()
        try:
            results = merge_tree(state_root, self.root, self.experiment)
        except StoreError as exc:
            raise DestinationError(f"{self.source.label}: {exc}".replace(str(state_root), self.source.label)) from None
        for result in results:
            store = ExperimentStore(self.root, result.experiment)
            if result.changed or store.is_behind():
                store.render(self.render, timeout=_RENDER_TIMEOUT)
        return results

    def _fetch(self) -> Path:
        remote = self.source
        assert not isinstance(remote, Directory)
        reason = hubsync.unusable(reading=True)
        if reason is not None:
            raise DestinationError(f"cannot read {remote.label}: {reason}")
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="trl-reporter-pull-")
        scratch = Path(self._scratch.name)
        client = hubsync.api()
        files = hubsync.listing(remote, client, float("inf"))
        if not any(hubsync.state_path(rel) for rel in files):
            raise DestinationError(f"no trl-reporter state in {remote.label}")
        hubsync.fetch_state(remote, scratch, files, client, float("inf"), None)
        return scratch


def following(results: list[MergeResult], now: float) -> list[RunRecord]:
    """The pulled runs still worth watching: unfinished, and heard from recently."""
    return [
        run
        for result in results
        for run in result.runs
        if not run.status.is_final and now - max(run.started_at, run.heartbeat_at or 0.0) <= WATCH_GIVES_UP_AFTER
    ]


def watch(
    puller: Puller,
    every: float,
    say: Callable[[list[MergeResult], list[RunRecord]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Pull every ``every`` seconds until no pulled run is left to follow."""
    while True:
        results = puller.pull()
        left = following(results, time.time())
        say(results, left)
        if not left:
            return
        sleep(every)
