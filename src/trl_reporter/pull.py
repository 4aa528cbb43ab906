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
from .merge import MergeResult, identity, merge_tree
from .records import RunRecord
from .store import ExperimentStore, RenderFn

# --watch stops following a run that has said nothing for this long (killed without a word), and
# stops waiting for a run to follow after this long.
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
        self.empty_ok = False  # a remote with no state yet is no error (--watch waits for it)

    def __enter__(self) -> Puller:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()

    def pull(self) -> list[MergeResult]:
        """Merge the source into the local reports, render what changed; what changed."""
        if isinstance(self.source, Directory):
            if not self.source.path.is_dir():
                if self.empty_ok:
                    return []
                raise DestinationError(f"{self.source.label!r} is not a directory")
            state_root = self.source.path
        else:
            fetched = self._fetch()
            if fetched is None:
                return []
            state_root = fetched
        try:
            results = merge_tree(state_root, self.root, self.experiment)
        except StoreError as exc:
            if self.empty_ok:  # the experiment is not there yet
                return []
            raise DestinationError(f"{self.source.label}: {exc}".replace(str(state_root), self.source.label)) from None
        if not results and not self.empty_ok:
            raise DestinationError(f"no trl-reporter state in {self.source.label}")
        for result in results:
            store = ExperimentStore(self.root, result.experiment)
            if result.changed or store.is_behind():
                store.render(self.render, timeout=_RENDER_TIMEOUT)
        return results

    def _fetch(self) -> Path | None:
        remote = self.source
        assert not isinstance(remote, Directory)
        reason = hubsync.unusable(reading=True)
        if reason is not None:
            raise DestinationError(f"cannot read {remote.label}: {reason}")
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="trl-reporter-pull-")
        scratch = Path(self._scratch.name)
        client, never = hubsync.api(), hubsync.Deadline()
        files = hubsync.listing(remote, client, never)
        if not any(hubsync.state_path(rel) for rel in files):
            if self.empty_ok:
                return None
            raise DestinationError(f"no trl-reporter state in {remote.label}")
        slugs = {m.parent.name for m in scratch.glob(".trl-reporter/*")} | {
            rel.split("/")[1] for rel in files if hubsync.state_path(rel)
        }
        hubsync.prune(scratch, files, slugs)
        hubsync.fetch_state(remote, scratch, files, client, never, None)
        return scratch


def watch(
    puller: Puller,
    every: float,
    say: Callable[[list[MergeResult], list[RunRecord]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Pull every ``every`` seconds until the runs it follows have ended. It follows every pulled
    run that is unfinished or that started after the watch began; a source where every run has
    ended is pulled once. A source with nothing published yet (a Job launched just before) is
    waited for, 15 minutes at most; a run silent for 15 minutes is not waited for. Returns False
    if nothing was published within 15 minutes."""
    began = time.time()
    puller.empty_ok = True
    followed: set[str] = set()
    while True:
        results = puller.pull()
        now = time.time()
        runs = {f"{r.experiment}/{identity(run)}": run for r in results for run in r.runs}
        followed |= {key for key, run in runs.items() if not run.status.is_final or run.started_at >= began}
        left = [
            run
            for key, run in runs.items()
            if key in followed
            and not run.status.is_final
            and now - max(run.started_at, run.heartbeat_at or 0.0) <= WATCH_GIVES_UP_AFTER
        ]
        say(results, left)
        if runs and not left:
            return True
        if not runs and now - began > WATCH_GIVES_UP_AFTER:
            return False
        sleep(every)
