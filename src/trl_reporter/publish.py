"""Publishing a run's report beyond the machine it trains on, on a background thread.

A Job's disk, a cluster node's and a notebook VM's disappear with them; a report that never
leaves them is lost. A :class:`Publisher` copies the experiment's report, charts and state to
each of its targets:

- a **directory** (a mounted bucket volume, NFS, a synced folder): the local state is merged into
  the directory's by :mod:`~trl_reporter.merge` (so runs from several jobs into one directory all
  stay) and its markdown is rendered there; at the start, on status changes, after evaluations,
  on each heartbeat (once a minute) and at the end;
- a **Hub repo**: the same, in a private mirror folder fetched from the repo first, then one
  commit of what changed; evaluations and heartbeats make at most one commit every 5 minutes
  (the start, status changes and the end go at once), so a long run does not bury the repo in
  commits and its heartbeat there stays recent enough not to look stale.

Training never waits for it: requests are noted and a daemon thread publishes the newest files,
one push at a time. Only the end waits, for the final push, up to a deadline (30 s, or 10 s after
SIGTERM). A failure is logged once per kind and never reaches the Trainer.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import hubsync, urls
from ._guard import Guard
from .destinations import Destination, Directory, Remote
from .joblinks import OwnerLookup, job_namespace
from .merge import merge_experiment
from .records import RunRecord
from .store import STATE_DIR, ExperimentStore, RenderFn

logger = logging.getLogger(__name__)

FINAL_DEADLINE = 30.0
SIGNAL_DEADLINE = 10.0
HUB_INTERVAL = 300.0
_RENDER_TIMEOUT = 5.0
_URGENT = ("start", "status", "final")


class Target:
    """One place a report is published to."""

    def __init__(self, destination: Destination, label: str | None = None) -> None:
        self.destination = destination
        self.label = label or destination.label
        self.is_hub = isinstance(destination, Remote)
        self.mapping: dict[str, str] = {}  # local run key -> its key there
        self.pushes = 0
        self.last_push = -float("inf")
        self._mirror: Path | None = None

    def push(self, store: ExperimentStore, render: RenderFn, keys: set[str] | None, give_up_at: float) -> None:
        if isinstance(self.destination, Directory):
            self._merge_and_render(store, self.destination.path, render, keys)
            self.pushes += 1
            return
        remote = self.destination
        client = hubsync.api()
        if self._mirror is None:
            self._mirror = Path(tempfile.mkdtemp(prefix="trl-reporter-mirror-"))
        files = hubsync.listing(remote, client, give_up_at)
        there = ExperimentStore(self._mirror, store.experiment)
        hubsync.fetch_state(remote, self._mirror, files, client, give_up_at, {there.slug})
        self._merge_and_render(store, self._mirror, render, keys)
        sent = hubsync.upload(
            remote,
            self._mirror,
            report_files(there),
            files,
            client,
            give_up_at,
            f"trl-reporter: {store.experiment}",
        )
        self.pushes += 1 if sent else 0

    def _merge_and_render(self, store: ExperimentStore, root: Path, render: RenderFn, keys: set[str] | None) -> None:
        there = ExperimentStore(root, store.experiment)
        merged = merge_experiment(store, there, keys=keys, mapping=self.mapping)
        if merged.changed or there.is_behind():
            there.render(render, timeout=_RENDER_TIMEOUT)

    def close(self) -> None:
        if self._mirror is not None:
            shutil.rmtree(self._mirror, ignore_errors=True)


def report_files(store: ExperimentStore) -> list[str]:
    """The report's files, relative to its root: the markdown, the charts and the saved state
    (not the local bookkeeping: lock, change counter, temporary files)."""
    root = store.root
    found = [store.report_path, root / STATE_DIR / ".gitignore", store.meta_path]
    found += store.chart_dir.rglob("*.svg")
    for folder, pattern in ((store.runs_dir, "*.json"), (store.state_dir / "history", "*.json")):
        found += folder.glob(pattern)
    found += store.evals_dir.glob("*/*.json")
    return sorted(
        str(p.relative_to(root))
        for p in found
        if not p.name.startswith(".") or p.name == ".gitignore"
        if p.is_file() and not p.is_symlink() and p.stat().st_size > 0
    )


class Publisher:
    """Publishes one run's experiment to its targets, off the training thread.

    Args:
        store: the local experiment.
        render: renders a target's markdown (the same template as locally).
        targets: where to publish.
        own_key: the run's key in ``store`` (it is known once the run has claimed its file).
    """

    def __init__(
        self,
        store: ExperimentStore,
        render: RenderFn,
        targets: list[Target],
        own_key: Callable[[], str],
        *,
        hub_interval: float = HUB_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.render = render
        self.targets = targets
        self.own_key = own_key
        self.hub_interval = hub_interval
        self.clock = clock
        self.guard = Guard()
        self._cond = threading.Condition()
        self._pending: dict[int, bool] = {}  # target index -> a push is asked for (True: at once)
        self._full: set[int] = set(range(len(targets)))  # whose next push merges every run
        self._asked = 0  # requests made
        self._done = 0  # requests that a finished push covered
        self._give_up_at = float("inf")
        self._thread: threading.Thread | None = None

    # -- requests, from the training thread ---------------------------------------------------

    def notify(self, reason: str) -> None:
        """Ask for a push: ``start``, ``status``, ``final`` (now); ``evaluation`` and ``heartbeat``
        (now, or for a Hub repo once 5 minutes have passed since its last push)."""
        with self._cond:
            for index, target in enumerate(self.targets):
                urgent = reason in _URGENT or not target.is_hub
                self._pending[index] = self._pending.get(index, False) or urgent
                if reason == "final":
                    self._full.add(index)
            self._asked += 1
            self._cond.notify_all()
        self._start()

    def finish(self, deadline: float) -> bool:
        """The final push of every target, waited for at most ``deadline`` seconds; True if done."""
        self.notify("final")
        with self._cond:
            asked = self._asked
            self._give_up_at = min(self._give_up_at, self.clock() + deadline)
            done = self._cond.wait_for(lambda: self._done >= asked, timeout=deadline)
        if not done:
            logger.warning(
                "trl-reporter: gave up publishing the report of %r to %s after %.0f s; the report is kept in %s",
                self.store.experiment,
                ", ".join(t.label for t in self.targets),
                deadline,
                self.store.report_path,
            )
        return done

    # -- the background thread ----------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="trl-reporter-publish", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = self.clock()
                    due = {i: self._due(i, urgent) for i, urgent in self._pending.items()}
                    ready = [i for i, when in due.items() if when <= now]
                    if ready:
                        break
                    self._cond.wait(timeout=min(due.values()) - now if due else None)
                asked = self._asked
                for index in ready:
                    del self._pending[index]
                full = {i for i in ready if i in self._full}
                self._full -= full
                give_up_at = self._give_up_at
            for index in ready:
                self._push(index, index in full, give_up_at)
            with self._cond:
                if not self._pending:
                    self._done = max(self._done, asked)
                self._cond.notify_all()

    def _due(self, index: int, urgent: bool) -> float:
        """When an asked-for push may run: at once, or for a Hub repo, 5 minutes after its last."""
        target = self.targets[index]
        return -math.inf if urgent or not target.is_hub else target.last_push + self.hub_interval

    def close(self) -> None:
        for target in self.targets:
            target.close()

    def _push(self, index: int, full: bool, give_up_at: float) -> None:
        target = self.targets[index]
        keys = None if full else {self.own_key()}
        try:
            target.push(self.store, self.render, keys, give_up_at)
        except Exception as exc:  # noqa: BLE001 - publishing never reaches the Trainer
            if full:
                with self._cond:
                    self._full.add(index)  # the next push tries every run again
            self.guard.report(f"publishing the report to {target.label}", exc)
        finally:
            target.last_push = self.clock()


def usable(destination: Destination) -> bool:
    """Whether to publish to ``destination``: a Hub repo needs the Hub online and a token (nothing
    is ever uploaded anonymously); without them, one warning, and the local report is kept."""
    if not isinstance(destination, Remote):
        return True
    reason = hubsync.unusable()
    if reason is not None:
        logger.warning(
            "trl-reporter: not publishing the report to %s: %s. The local report is kept.", destination.label, reason
        )
    return reason is None


class Outreach:
    """What a run does beyond this machine: its :class:`Publisher` (if it publishes anywhere) and
    the lookup of its Job's owner (if the logs URL needs one). Does nothing without them."""

    def __init__(self, publisher: Publisher | None = None, lookup: OwnerLookup | None = None) -> None:
        self.publisher = publisher
        self.lookup = lookup

    @classmethod
    def for_run(
        cls,
        destination: Destination | None,
        session: Any,
        args: Any,
        render: RenderFn,
        environ: Mapping[str, str] = os.environ,
    ) -> Outreach:
        """The outreach of a starting run. Sets where the record says it is published, and the
        Job's logs URL when a namespace is known without asking the Hub. ``session`` is the
        run's :class:`~trl_reporter.lifecycle.RunSession`, whose record may change (a resumption)."""
        record: RunRecord = session.record
        targets = [Target(destination)] if destination is not None and usable(destination) else []
        repo = getattr(args, "hub_model_id", None)
        if environ.get("JOB_ID") and getattr(args, "push_to_hub", False) and repo and getattr(args, "output_dir", None):
            # The Trainer's own pushes upload output_dir (never its README.md, which TRL rewrites).
            folder = Path(args.output_dir).absolute() / "training_reports"
            targets.append(Target(Directory(folder), f"{repo} (in output_dir/training_reports, pushed with the model)"))
        record.published_to = [t.label[:200] for t in targets]
        lookup = None
        if record.job_id and not record.job_url:
            namespace = job_namespace(args, targets)
            if namespace is not None:
                record.job_url = urls.job_url(namespace, record.job_id, environ)
            else:
                lookup = OwnerLookup(record.job_id, environ)
        publisher = None
        if targets:
            publisher = Publisher(session.store, render, targets, lambda: str(session.record.key))
            atexit.register(publisher.close)
        return cls(publisher, lookup)

    def notify(self, reason: str) -> None:
        if self.publisher is not None:
            self.publisher.notify(reason)

    def finish(self, deadline: float | None = None) -> None:
        """The final push, waited for at most ``deadline`` seconds (default :data:`FINAL_DEADLINE`)."""
        if self.publisher is not None:
            self.publisher.finish(FINAL_DEADLINE if deadline is None else deadline)

    def adopt_job_url(self, record: RunRecord) -> bool:
        """Take the Job's logs URL once the lookup found it; True if the record changed."""
        found = self.lookup.url if self.lookup is not None else None
        if found is None or record.job_url == found:
            return False
        record.job_url = found
        for ev in record.evaluations:
            ev.job_link = ev.job_link or found
        return True


def publish_once(
    store: ExperimentStore, render: RenderFn, destination: Destination, deadline: float = FINAL_DEADLINE
) -> bool:
    """Publish the whole experiment to ``destination`` now, waiting at most ``deadline`` seconds
    (after evaluations added outside training). True if done; a failure is logged."""
    if not usable(destination):
        return False
    publisher = Publisher(store, render, [Target(destination)], lambda: "")
    try:
        return publisher.finish(deadline)
    finally:
        publisher.close()
