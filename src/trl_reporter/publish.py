"""Publishing a run's report beyond the machine it trains on, on background threads.

A Job's disk, a cluster node's and a notebook VM's disappear with them; a report that never
leaves them is lost. A :class:`Publisher` copies the experiment's report, charts and state to one
target (see :mod:`~trl_reporter.targets`: a directory, or a Hub repo): at the start, on status
changes, after evaluations, on each heartbeat (once a minute) and at the end. A Hub repo gets at
most one commit every 5 minutes besides the start, status changes and the end, so a long run does
not bury the repo in commits, and its heartbeat there stays recent enough not to look stale.

Training never waits for it: requests are noted and one daemon thread per target publishes the
newest files, one push at a time (a slow Hub never holds up a directory). Only the end waits, for
the final pushes, up to a deadline (30 s, or 10 s after SIGTERM), and a final push that did not
land is always said. Other failures are logged once per kind; none reaches the Trainer.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import hubsync, urls
from ._guard import Guard
from .destinations import Destination, Directory, Remote
from .joblinks import OwnerLookup, job_namespace
from .records import RunRecord
from .redact import clean_text
from .store import ExperimentStore, RenderFn
from .targets import Target

logger = logging.getLogger(__name__)

FINAL_DEADLINE = 30.0
SIGNAL_DEADLINE = 10.0
HUB_INTERVAL = 300.0
_URGENT = ("start", "status", "final")


class Publisher:
    """Publishes one run's experiment to one target, off the training thread: one daemon thread
    per target, so a slow Hub never holds up a directory.

    Args:
        store: the local experiment.
        render: renders the target's markdown (the same template as locally).
        target: where to publish.
        own_key: the run's key in ``store`` (it is known once the run has claimed its file).
    """

    def __init__(
        self,
        store: ExperimentStore,
        render: RenderFn,
        target: Target,
        own_key: Callable[[], str],
        *,
        hub_interval: float = HUB_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.render = render
        self.target = target
        self.own_key = own_key
        self.hub_interval = hub_interval
        self.clock = clock
        self.guard = Guard()
        self.deadline = hubsync.Deadline()
        self.last_push = -math.inf
        self._cond = threading.Condition()
        self._pending: bool | None = None  # a push asked for: True at once, False when due
        self._full = True  # the next push merges every run, not only this one
        self._asked = 0  # requests made
        self._done = 0  # requests that a finished push covered
        self._failure: BaseException | None = None  # of the last push
        self._running = False  # a thread serves the requests
        self._final = False  # the final push is asked for: its failure is said by finish_all

    # -- requests, from the training thread ---------------------------------------------------

    def notify(self, reason: str) -> int:
        """Ask for a push: ``start``, ``status``, ``final`` (at once); ``evaluation`` and
        ``heartbeat`` (at once into a directory, at most every 5 minutes into a Hub repo; a target
        that takes no heartbeat ignores them). Returns the request's number."""
        with self._cond:
            if reason == "heartbeat" and not self.target.heartbeats:
                return self._asked
            urgent = reason in _URGENT or not self.target.is_hub
            self._pending = bool(self._pending) or urgent
            self._full = self._full or reason == "final"
            self._final = self._final or reason == "final"
            self._asked += 1
            self._cond.notify_all()
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="trl-reporter-publish", daemon=True).start()
            return self._asked

    def wait(self, asked: int, until: float) -> BaseException | None:
        """Wait (until ``until``, monotonic) for a push that covers request ``asked``; returns
        what made it fail, or a :class:`TimeoutError` when it did not end in time."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._done >= asked, timeout=max(0.0, until - time.monotonic()))
            return self._failure if done else TimeoutError("no answer within the deadline")

    def finish(self, deadline: float) -> bool:
        """The final push, waited for at most ``deadline`` seconds; True if it landed."""
        return finish_all([self], deadline)

    # -- the background thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending is None:
                        self._running = False  # nothing asked for: the next request starts a thread
                        return
                    due = -math.inf if self._pending else self.last_push + self.hub_interval
                    if due <= self.clock():
                        break
                    self._cond.wait(timeout=due - self.clock())
                asked, full, final = self._asked, self._full, self._final
                self._pending, self._full, self._final = None, False, False
            failure = self._push(full, final)
            with self._cond:
                if failure is not None and full:
                    self._full = True  # the next push tries every run again
                self._failure = failure
                self._done = max(self._done, asked)
                self._cond.notify_all()

    def _push(self, full: bool, final: bool) -> BaseException | None:
        own = self.own_key()
        try:
            self.target.push(self.store, self.render, None if full else {own}, own, self.deadline)
        except Exception as exc:  # noqa: BLE001 - publishing never reaches the Trainer
            if not final:
                self.guard.report(f"publishing the report to {self.target.label}", exc)
            return exc
        finally:
            self.last_push = self.clock()
        return None


def finish_all(publishers: Sequence[Publisher], deadline: float) -> bool:
    """The final push of each publisher, all at once, waited for at most ``deadline`` seconds in
    all. Each that did not land is said in one warning (unless that kind of failure was said
    during training: a failure is said once); True if all landed."""
    tickets = [p.notify("final") for p in publishers]
    until = time.monotonic() + deadline
    for publisher in publishers:
        publisher.deadline.set(until)
    landed = True
    for publisher, asked in zip(publishers, tickets):
        failure = publisher.wait(asked, until)
        publisher.deadline.clear()
        if failure is not None:
            landed = False
            if not publisher.guard.first_time(failure):
                continue  # a failure is said once: this kind was, during training
            logger.warning(
                "trl-reporter: could not publish the final report of %r to %s (%s); the report is kept in %s",
                publisher.store.experiment,
                publisher.target.label,
                f"gave up after {deadline:.0f} s" if isinstance(failure, TimeoutError) else clean_text(str(failure)),
                publisher.store.report_path,
            )
    return landed


def usable(destination: Destination, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to publish to ``destination``; if not, one warning says why, and the local report
    is kept. A Hub repo needs the Hub online and a token (nothing is ever uploaded anonymously).
    Inside a Job, a directory whose parent is missing is a volume that was not mounted: writing
    it would only fill the Job's own disk, which is deleted with it."""
    reason = None
    if isinstance(destination, Remote):
        reason = hubsync.unusable(environ=environ)
    elif environ.get("JOB_ID") and not destination.path.parent.is_dir():
        reason = (
            f"{str(destination.path.parent)!r} does not exist in this Job (is the bucket mounted? "
            f"hf jobs run -v hf://buckets/<namespace>/<bucket>:{destination.path.parent} ...)"
        )
    if reason is not None:
        logger.warning(
            "trl-reporter: not publishing the report to %s: %s. The local report is kept.", destination.label, reason
        )
    return reason is None


# Publishers of the runs training in this process, so that an evaluation added meanwhile is
# published by them instead of by a second publisher (two pushes never overlap).
_LIVE: dict[tuple[str, str], Publisher] = {}


class Outreach:
    """What a run does beyond this machine: its publishers (one per target) and the lookup of its
    Job's owner (if the logs URL needs one). Does nothing without them."""

    def __init__(self, publishers: Sequence[Publisher] = (), lookup: OwnerLookup | None = None) -> None:
        self.publishers = list(publishers)
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
        targets = [Target(destination)] if destination is not None and usable(destination, environ) else []
        repo = getattr(args, "hub_model_id", None)
        if environ.get("JOB_ID") and getattr(args, "push_to_hub", False) and repo and getattr(args, "output_dir", None):
            # The Trainer's own pushes upload output_dir (never its README.md, which TRL rewrites):
            # no heartbeats there, and no lock files left to upload.
            folder = Directory(Path(args.output_dir).absolute() / "training_reports")
            label = f"{repo} (in output_dir/training_reports, pushed with the model)"
            targets.append(Target(folder, label, heartbeats=False, tidy=True))
        record.published_to = [t.label[:200] for t in targets]
        lookup = None
        if record.job_id and not record.job_url:
            namespace = job_namespace(args, targets)
            if namespace is not None:
                record.job_url = urls.job_url(namespace, record.job_id, environ)
            else:
                lookup = OwnerLookup(record.job_id, environ)
        publishers = [Publisher(session.store, render, t, lambda: str(session.record.key)) for t in targets]
        for publisher in publishers:
            _LIVE[_live_key(session.store, publisher.target.destination)] = publisher
        return cls(publishers, lookup)

    def notify(self, reason: str) -> None:
        for publisher in self.publishers:
            publisher.notify(reason)

    def finish(self, deadline: float | None = None) -> None:
        """The final pushes, waited for at most ``deadline`` seconds (default :data:`FINAL_DEADLINE`)."""
        if self.publishers:
            finish_all(self.publishers, FINAL_DEADLINE if deadline is None else deadline)
            for publisher in self.publishers:
                key = _live_key(publisher.store, publisher.target.destination)
                if _LIVE.get(key) is publisher:
                    del _LIVE[key]
                atexit.register(publisher.target.close)

    def adopt_job_url(self, record: RunRecord, *, wait: float = 0.0) -> bool:
        """Take the Job's logs URL once the lookup found it (waiting at most ``wait`` seconds for a
        lookup still under way: at the end, there is no later save); True if the record changed."""
        found = self.lookup.wait(wait) if self.lookup is not None else None
        if found is None or record.job_url == found:
            return False
        record.job_url = found
        for ev in record.evaluations:
            ev.job_link = ev.job_link or found
        return True


def _live_key(store: ExperimentStore, destination: Destination) -> tuple[str, str]:
    return (str(store.state_dir.absolute()), destination.label)


def publish_once(
    store: ExperimentStore, render: RenderFn, destination: Destination, deadline: float = FINAL_DEADLINE
) -> bool:
    """Publish the whole experiment to ``destination`` (after evaluations added outside training):
    through the publisher of a run training in this process, without waiting, or else now,
    waiting at most ``deadline`` seconds. True if done (or asked for); a failure is logged."""
    live = _LIVE.get(_live_key(store, destination))
    if live is not None:
        live.notify("evaluation")
        return True
    if not usable(destination):
        return False
    target = Target(destination)
    try:
        return Publisher(store, render, target, lambda: "").finish(deadline)
    finally:
        target.close()
