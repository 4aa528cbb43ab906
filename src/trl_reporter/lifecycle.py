"""One training run's life in this process: claimed, saved, heartbeats, and its ending.

The callback hands facts to a :class:`RunSession`; the session decides what they mean for the
record (the status rules live here and in :mod:`~trl_reporter.records`) and when to write. It
writes only on status changes, when the Trackio link is found and after evaluations, plus a
heartbeat on the first logged step and then at most once a minute: never per step.
"""

from __future__ import annotations

import atexit
import logging
import math
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import capture, catalog, detect, liveness, maintenance, naming, publish
from ._guard import Guard
from .announce import announce
from .capture import Captured, Settings
from .endings import ProcessHooks
from .history import History
from .records import Failure, FailureReason, RunRecord, Status, StopReason, to_real
from .redact import clean_text
from .store import ExperimentStore, RenderFn

if TYPE_CHECKING:
    from transformers import TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

# At the end, a Job's owner lookup still under way is waited for this long (no later save).
_OWNER_WAIT = 2.0
# Metrics of an evaluation that describe the evaluation loop (speed, tokens counted), not the model.
_NOT_SCORES = ("epoch", "_runtime", "_samples_per_second", "_steps_per_second", "_num_tokens")


class RunSession:
    """The live state of one run in this process."""

    def __init__(self, record: RunRecord, store: ExperimentStore, render: RenderFn, guard: Guard, state: Any) -> None:
        self.record = record
        self.store = store
        self._render = render
        self._guard = guard
        self.state = state
        self.writes = 0
        self.hooks = ProcessHooks(self.on_uncaught, self.on_exit, self.on_signal, self.on_signal_survived)
        self._next_heartbeat = time.monotonic() + liveness.HEARTBEAT_EVERY
        self._logged = False
        self._saving = False
        self._changes = 0  # changes asked to be saved
        self._saved = 0  # of which the state file holds this many
        self._final_unsaved = False
        self.history = History()
        self.outreach = publish.Outreach()

    # -- starting ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        previous: RunSession | None,
        settings: Settings,
        render: RenderFn,
        guard: Guard,
        args: TrainingArguments,
        state: TrainerState,
        model: Any,
        train_dataset: Any,
        *,
        trackio_blocked_by: str | None = None,
    ) -> RunSession:
        """The session for a ``train()`` that begins: the previous one again when it is the same
        run retried with a smaller batch (``auto_find_batch_size``), else a new one (and a previous
        run that never ended is marked superseded)."""
        if previous is not None and not previous.record.status.is_final:
            if getattr(args, "auto_find_batch_size", False):
                previous.state = state
                return previous
            previous.fail(Failure(reason=FailureReason.SUPERSEDED))
        captured = capture.capture_run(
            settings, guard, args, state, model, train_dataset, trackio_blocked_by=trackio_blocked_by
        )
        store = ExperimentStore(captured.report_dir, captured.record.experiment)
        guard.attempt("cleaning temporary files", store.clean_debris, 0)
        guard.attempt(
            "marking vanished runs",
            lambda: bool(maintenance.reconcile([store], render, timeout=maintenance.LOCK_TIMEOUT_TRAINING)),
            False,
        )
        session = cls(captured.record, store, render, guard, state)
        session.outreach = guard.attempt(
            "setting up publishing",
            lambda: publish.Outreach.for_run(settings.destination, session, args, render),
            session.outreach,
        )
        # Even if this first write fails (a full disk, a broken template), the session and its
        # hooks live on: later writes may succeed, and the ending must still be recorded.
        session.record.key = f"{naming.slug(session.record.run_name)}-{captured.record.pid}"
        guard.attempt("saving the run", lambda: session._claim(captured), None)
        session.hooks.install()
        guard.attempt("announcing the report", lambda: announce(session.record, store), None)
        session.outreach.notify("start")
        return session

    def _claim(self, captured: Captured) -> None:
        """Claim this run's state file (no lock needed), save it and render: the run shows at once."""
        c = captured
        key, name, previous = catalog.claim_run(
            self.store, self.record.run_name, resuming=c.resuming, generated=c.generated_name, same=c.same
        )
        self.record.key, self.record.run_name = key, name
        if previous is not None:
            self._continue(previous, c.checkpoint, c.checkpoint_saved_at)
        elif captured.patch is not None:
            self.store.save_patch(key, captured.patch)
        self._save()

    def _continue(self, previous: RunRecord, checkpoint: str | None, saved_at: float | None) -> None:
        """Resume a saved run: keep its identity and start, note the resumption."""
        current = self.record
        step = int(getattr(self.state, "global_step", 0) or 0)
        previous.reopen(at=current.started_at, step=step, checkpoint=checkpoint, saved_at=saved_at)
        previous.take_process_of(current, step)  # the resumed run now lives in this process
        self.record = previous
        # The curves up to the checkpoint's step, as its own log has them; later ones are replayed.
        log = getattr(self.state, "log_history", None)
        self.history = History.resumed(log, step, _NOT_SCORES, self.store.load_history(previous.key))

    # -- saving ------------------------------------------------------------------------------

    def _write(self) -> None:
        """Write the run's state, and its history when it grew since the last write."""
        history = self.history if self.history.changed else None
        if history is not None:
            self.history.changed = False
            self.record.curves = history.names()
            self.record.trend = history.trend()
            losses = [v for _, v in history.series.get("eval_loss", []) if math.isfinite(v)]
            self.record.best_eval_loss = min(losses) if losses else None
        try:
            self.store.save_run(self.record, history)
        except BaseException:
            self.history.changed = self.history.changed or history is not None
            raise

    def _save(self, *, render: bool = True, timeout: float = maintenance.LOCK_TIMEOUT_TRAINING) -> None:
        self._changes += 1
        if self._saving:
            # A signal handler interrupted a save of this same run: write and render now (the
            # process may die right after; the lock is re-entrant, so this never waits on the
            # interrupted save). The interrupted save then sees the change and writes once more,
            # so that its older snapshot cannot land last.
            self._write()
            self._saved = self._changes
            if render:
                self._render_report(timeout)
            return
        self._saving = True
        try:
            while True:
                seen = self._changes
                self._write()
                self._saved = max(self._saved, seen)
                if render:
                    self._render_report(timeout)
                if seen == self._changes:
                    break
        finally:
            self._saving = False

    def _render_report(self, timeout: float) -> None:
        if self.store.render(self._render, timeout=timeout):
            self.writes += 1
        else:
            logger.warning(
                "trl-reporter: the report of %r is locked by another writer; run %r is saved, and the next writer "
                "or `trl-report` command brings the report up to date",
                self.store.experiment,
                self.record.run_name,
            )

    # -- during training ---------------------------------------------------------------------

    def look_for_trackio(self) -> None:
        """Add the Trackio link as soon as a run appears (it may start after on_train_begin)."""
        if self.record.trackio is None:
            found = detect.trackio_run()
            if found is not None:
                self.record.trackio = found
                self._save()
                self.outreach.notify("evaluation")

    def heartbeat(self, *, now: float | None = None) -> None:
        """At most once a minute while training runs: the run's own state file, no render."""
        now = time.monotonic() if now is None else now
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + liveness.HEARTBEAT_EVERY
            self.record.heartbeat_at = time.time()
            self.record.steps_done = int(getattr(self.state, "global_step", 0) or 0)
            rendered = self.outreach.adopt_job_url(self.record)
            self._save(render=rendered)
            self.outreach.notify("heartbeat")

    def log(self, logs: Mapping[str, Any]) -> None:
        """Keep the last logged training loss (NaN and infinities too: a diverged run must say so)
        and its curve (in memory: it is written with the next save), and the run's mean loss from
        the final summary. The first log is also a heartbeat, so a run killed early is known to
        have reached its first logged step."""
        for key, field in (("loss", "final_loss"), ("train_loss", "mean_loss")):
            value = to_real(logs.get(key))
            if key == "train_loss" and value is not None and self.record.resumed:
                value = self.history.mean("loss") or value  # the Trainer's covers this part only
            if value is not None:
                setattr(self.record, field, float(value))
                if key == "loss":
                    self.history.add("loss", int(getattr(self.state, "global_step", 0) or 0), float(value))
        if not self._logged:
            self._logged = True
            self.heartbeat(now=self._next_heartbeat)

    def evaluate(self, metrics: Mapping[str, Any], step: int) -> None:
        for name, raw in metrics.items():
            value = to_real(raw)
            if value is None or name == "epoch" or name.endswith(_NOT_SCORES):
                continue
            name = clean_text(str(name))
            self.record.set_metric(name, value, step=step, job_link=self.record.job_url)
            self.history.add(name, step, float(value))
        self.record.steps_done = step
        self.outreach.adopt_job_url(self.record)
        self._save()
        self.outreach.notify("evaluation")

    # -- endings -----------------------------------------------------------------------------

    def end(self, state: TrainerState, args: TrainingArguments) -> None:
        """``on_train_end``: Success when every planned step ran, else Completed (stopped early)."""
        self.hooks.uninstall()
        if self.record.status.is_final:
            if self._final_unsaved:
                self._save_final(maintenance.LOCK_TIMEOUT_FINAL)
            return
        self.record.model_link = capture.model_link(args) or self.record.model_link
        step = int(state.global_step)
        planned = int(state.max_steps or 0)
        self.record.steps_planned = planned or self.record.steps_planned
        if planned and step < planned:
            self.record.stop_reason = StopReason.EARLY
            self.record.finish(Status.COMPLETED, at=time.time(), steps_done=step)
        else:
            self.record.finish(Status.SUCCESS, at=time.time(), steps_done=step)
        self._save_final(maintenance.LOCK_TIMEOUT_FINAL)

    def fail(
        self,
        failure: Failure,
        *,
        timeout: float = maintenance.LOCK_TIMEOUT_FINAL,
        deadline: float | None = None,
    ) -> None:
        """Record a failure now, unless the run already ended (a final status is never downgraded)."""
        if self.record.status.is_final:
            return
        self.hooks.uninstall()
        self.record.fail(failure, at=time.time(), steps_done=int(getattr(self.state, "global_step", 0) or 0))
        self._save_final(timeout, deadline=deadline)

    def _save_final(self, timeout: float, *, deadline: float | None = None) -> None:
        """Save a final status, then publish it (waiting at most ``deadline`` seconds). If the save
        fails (a moment of full disk), try again when the process exits: a run that trained to the
        end must not be found "vanished" for want of one write."""
        self.outreach.adopt_job_url(self.record)
        try:
            self._save(timeout=timeout)
            # A Job's logs link still being looked up: no later save would carry it. Waited for
            # after the status is saved, and not after a signal (the grace is for the push).
            if deadline is None and self.outreach.adopt_job_url(self.record, wait=_OWNER_WAIT):
                self._save(timeout=timeout)
        except Exception:
            # Only a state file that missed the change needs the retry; a report that failed to
            # render is caught up by the next writer or command.
            if self._saved < self._changes and not self._final_unsaved:
                self._final_unsaved = True
                atexit.register(self._retry_final_at_exit)
            raise
        finally:
            self.outreach.finish(deadline)
        self._final_unsaved = False

    def _retry_final_at_exit(self) -> None:
        if not self._final_unsaved:
            return
        try:
            self._save(timeout=maintenance.LOCK_TIMEOUT_SIGNAL)
        except Exception as exc:  # noqa: BLE001 - the process is ending: say it, never raise
            if self._saved >= self._changes:
                return  # the state is saved; only the report failed, and it catches up later
            # Logging may already be torn down at exit, and this must reach the user.
            sys.stderr.write(
                f"trl-reporter: could not save the final status ({self.record.status.value}) of run "
                f"{self.record.run_name!r} in {str(self.store.state_dir)!r}: {clean_text(str(exc))}. "
                "The report still shows the run as it was last saved.\n"
            )
        else:
            self._final_unsaved = False

    def on_uncaught(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self.fail(capture.failure_from_exception(exc_type, exc, tb))

    def on_exit(self, reason: FailureReason) -> None:
        self.fail(Failure(reason=reason))

    def on_signal(self, name: str) -> None:
        self.fail(
            capture.signal_failure(name), timeout=maintenance.LOCK_TIMEOUT_SIGNAL, deadline=publish.SIGNAL_DEADLINE
        )

    def on_signal_survived(self, name: str) -> None:
        """The program's own handler returned: training goes on, and so does the run."""
        self.record.survive_signal(name, at=time.time(), step=int(getattr(self.state, "global_step", 0) or 0))
        if not self.record.status.is_final:
            self._final_unsaved = False  # the failure is taken back: nothing final is pending
            self.hooks.install()
            self._save(timeout=maintenance.LOCK_TIMEOUT_SIGNAL)
            self.outreach.notify("status")
