"""One training run as it happens: builds its record, keeps it durable, and sees it end.

The callback hands facts to a :class:`RunSession`; the session decides what they mean for the
record (the status rules live here and in :mod:`records`) and when to write. It writes only on
status changes, when the Trackio link is found and after evaluations, never per step.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
import traceback as tb_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import detect, liveness, naming, params
from ._guard import Guard
from .endings import ProcessHooks
from .records import Failure, RunRecord, Status, to_real
from .redact import clean_text
from .store import ExperimentStore, claim_run

logger = logging.getLogger(__name__)

# Bounded waits for the experiment lock: short while the model trains, longer once it has stopped.
LOCK_TIMEOUT_TRAINING = 2.0
LOCK_TIMEOUT_FINAL = 5.0
# A terminating signal leaves little time (Kubernetes and SLURM give seconds): the run's own state
# is written first, without waiting, and the report only if its lock comes quickly.
LOCK_TIMEOUT_SIGNAL = 1.0
# Metrics of an evaluation that describe the evaluation loop (speed, tokens counted), not the model.
_NOT_SCORES = ("epoch", "_runtime", "_samples_per_second", "_steps_per_second", "_num_tokens")


@dataclass(frozen=True)
class Settings:
    """What the user chose (arguments beat the environment; both beat detection)."""

    experiment: str | None = None
    report_dir: str | os.PathLike[str] | None = None
    base_model: str | None = None
    dataset: str | None = None
    job_owner: str | None = None
    trackio: bool = True
    template: str | None = None


class RunSession:
    """The live state of one run in this process."""

    def __init__(
        self,
        record: RunRecord,
        store: ExperimentStore,
        render: Callable[[str, list[RunRecord]], str],
        guard: Guard,
        state: Any,
    ) -> None:
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

    # -- starting ----------------------------------------------------------------------------

    @classmethod
    def begin(
        cls,
        settings: Settings,
        render: Callable[[str, list[RunRecord]], str],
        guard: Guard,
        args: Any,
        state: Any,
        model: Any,
        train_dataset: Any,
        environ: Mapping[str, str] = os.environ,
        *,
        trackio_blocked_by: str | None = None,
    ) -> RunSession:
        now = time.time()
        trainer_class = guard.attempt("detecting the trainer class", lambda: detect.trainer_class_name(args), "Trainer")
        base_model = (
            detect.hub_link(settings.base_model, "model", environ)
            if settings.base_model
            else guard.attempt("detecting the base model", lambda: detect.base_model(model, environ), None)
        )
        dataset = (
            detect.hub_link(settings.dataset, "dataset", environ)
            if settings.dataset
            else guard.attempt("detecting the dataset", lambda: detect.dataset(train_dataset, environ), None)
        )
        # Names become file names, run ids and headings: secrets and bytes that are not UTF-8 are
        # cleaned out here, before anything is named after them.
        experiment = clean_text(
            naming.experiment_name(
                settings.experiment,
                project=getattr(args, "project", None),
                output_dir=getattr(args, "output_dir", None),
                model_name=base_model.name if base_model else None,
                trainer_kind=naming.trainer_kind(trainer_class),
                environ=environ,
            )
        )
        root = naming.report_dir(settings.report_dir, environ)
        store = ExperimentStore(root, experiment)
        guard.attempt("cleaning temporary files", store.clean_debris, 0)
        guard.attempt(
            "marking vanished runs", lambda: liveness.reconcile(root, render, lock_timeout=LOCK_TIMEOUT_TRAINING), []
        )

        # A Trackio run started by report_to="trackio" is linked even when trackio=False, which
        # only stops the callback from starting one itself.
        tracked = detect.trackio_run()
        run_name = getattr(args, "run_name", None) or (tracked.run if tracked else None)
        generated = run_name is None
        run_name = clean_text(str(run_name)) if run_name is not None else f"run-{int(now)}"
        resuming = int(getattr(state, "global_step", 0) or 0) > 0
        job_id, job_url = detect.hf_job(settings.job_owner, environ)

        record = RunRecord(
            run_id="",
            run_name=run_name,
            experiment=experiment,
            started_at=now,
            base_model=base_model,
            dataset=dataset,
            host=detect.host(),
            host_id=detect.host_id(),
            pid=os.getpid(),
            process_started=liveness.process_started(os.getpid()),
            job_id=job_id,
            job_url=job_url,
            trackio=tracked,
            steps_planned=int(getattr(state, "max_steps", 0) or 0) or None,
            model_link=_model_link(args, environ),
        )
        record.parameters = guard.attempt(
            "collecting training parameters", lambda: params.curated(args, model, trainer_class), []
        )
        record.changed_arguments = guard.attempt(
            "collecting changed arguments", lambda: params.changed_arguments(args), []
        )
        if not settings.trackio:
            record.trackio_note = (
                "Trackio logging is off for this run. Turn it on with ReportCallback(trackio=True) "
                'or report_to="trackio".'
            )
        elif trackio_blocked_by and tracked is None:
            record.trackio_note = (
                f"trl-reporter did not start Trackio: {trackio_blocked_by} is set, and Trackio started from here "
                'would send the run there, which only report_to="trackio" asks for. Add report_to="trackio" to log '
                "to it, or unset the variable to log locally."
            )
        session = cls(record, store, render, guard, state)
        # Even if this first write fails (a full disk, a broken template), the session and its
        # hooks live on: later writes may succeed, and the ending must still be recorded.
        record.run_id = f"{naming.slug(run_name)}-{os.getpid()}"
        guard.attempt("saving the run", lambda: session._claim(generated=generated, resuming=resuming, now=now), None)
        session.hooks.install()
        return session

    def _claim(self, *, generated: bool, resuming: bool, now: float) -> None:
        """Claim this run's state file (no lock needed), save it and render: the run shows at once."""
        key, name, previous = claim_run(self.store, self.record.run_name, resuming=resuming, generated=generated)
        self.record.run_id, self.record.run_name = key, name
        if previous is not None:
            self._continue(previous, now)
        self._save()

    def _continue(self, previous: RunRecord, now: float) -> None:
        """Resume a saved run: keep its identity and start, note the resumption."""
        current = self.record
        previous.reopen(at=now, step=int(getattr(self.state, "global_step", 0) or 0))
        # The resumed run now lives in this process: its liveness is this process's.
        for field in (
            "parameters", "changed_arguments", "host", "host_id", "pid", "process_started", "job_id", "job_url",
            "steps_planned", "model_link",
        ):
            setattr(previous, field, getattr(current, field))
        previous.trackio = current.trackio or previous.trackio
        previous.trackio_note = current.trackio_note
        self.record = previous

    # -- during training ---------------------------------------------------------------------

    def _save(self, *, render: bool = True, timeout: float = LOCK_TIMEOUT_TRAINING) -> None:
        self._changes += 1
        if self._saving:
            # A signal handler interrupted a save of this same run: write and render now (the
            # process may die right after; the lock is re-entrant, so this never waits on the
            # interrupted save). The interrupted save then sees the change and writes once more,
            # so that its older snapshot cannot land last.
            self.store.save_run(self.record)
            self._saved = self._changes
            if render:
                self._render_report(timeout)
            return
        self._saving = True
        try:
            while True:
                seen = self._changes
                self.store.save_run(self.record)
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

    def look_for_trackio(self) -> None:
        """Add the Trackio link as soon as a run appears (it may start after on_train_begin)."""
        if self.record.trackio is None:
            found = detect.trackio_run()
            if found is not None:
                self.record.trackio = found
                self._save()

    def heartbeat(self, *, now: float | None = None) -> None:
        """At most once a minute while training runs: the run's own state file, no render."""
        now = time.monotonic() if now is None else now
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + liveness.HEARTBEAT_EVERY
            self.record.heartbeat_at = time.time()
            self.record.steps_done = int(getattr(self.state, "global_step", 0) or 0)
            self._save(render=False)

    def log(self, logs: Mapping[str, Any]) -> None:
        """Keep the last logged training loss (NaN and infinities too: a diverged run must say so),
        and the run's mean loss from the final summary. The first log is also a heartbeat, so a
        run killed early is known to have reached its first logged step."""
        for key, field in (("loss", "final_loss"), ("train_loss", "mean_loss")):
            value = to_real(logs.get(key))
            if value is not None:
                setattr(self.record, field, float(value))
        if not self._logged:
            self._logged = True
            self.heartbeat(now=self._next_heartbeat)

    def evaluate(self, metrics: Mapping[str, Any], step: int) -> None:
        for name, raw in metrics.items():
            value = to_real(raw)
            if value is None or name == "epoch" or name.endswith(_NOT_SCORES):
                continue
            self.record.set_metric(clean_text(str(name)), value, step=step, job_link=self.record.job_url)
        self.record.steps_done = step
        self._save()

    # -- endings -----------------------------------------------------------------------------

    def end(self, state: Any, args: Any) -> None:
        """``on_train_end``: Success when every planned step ran, else Completed (stopped early)."""
        self.hooks.uninstall()
        if self.record.status.is_final:
            if self._final_unsaved:
                self._save_final(LOCK_TIMEOUT_FINAL)
            return
        self.record.model_link = _model_link(args, os.environ) or self.record.model_link
        step = int(state.global_step)
        planned = int(state.max_steps or 0)
        self.record.steps_planned = planned or self.record.steps_planned
        if planned and step < planned:
            self.record.stop_reason = "training was stopped before the planned steps, by early stopping or a callback"
            self.record.finish(Status.COMPLETED, at=time.time(), steps_done=step)
        else:
            self.record.finish(Status.SUCCESS, at=time.time(), steps_done=step)
        self._save_final(LOCK_TIMEOUT_FINAL)

    def fail(self, failure: Failure, *, timeout: float = LOCK_TIMEOUT_FINAL) -> None:
        """Record a failure now, unless the run already ended (a final status is never downgraded)."""
        if self.record.status.is_final:
            return
        self.hooks.uninstall()
        self.record.fail(failure, at=time.time(), steps_done=int(getattr(self.state, "global_step", 0) or 0))
        self._save_final(timeout)

    def _save_final(self, timeout: float) -> None:
        """Save a final status. If that fails (a moment of full disk), try again when the process
        exits: a run that trained to the end must not be found "vanished" for want of one write."""
        try:
            self._save(timeout=timeout)
        except Exception:
            # Only a state file that missed the change needs the retry; a report that failed to
            # render is caught up by the next writer or command.
            if self._saved < self._changes and not self._final_unsaved:
                self._final_unsaved = True
                atexit.register(self._retry_final_at_exit)
            raise
        self._final_unsaved = False

    def _retry_final_at_exit(self) -> None:
        if not self._final_unsaved:
            return
        try:
            self._save(timeout=LOCK_TIMEOUT_SIGNAL)
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
        self.fail(failure_from_exception(exc_type, exc, tb))

    def on_exit(self, reason: str) -> None:
        self.fail(Failure(reason=reason))

    def on_signal(self, name: str) -> None:
        reason = "interrupted by SIGINT" if name == "SIGINT" else f"terminated by {name}"
        self.fail(Failure(reason=reason, signal=name), timeout=LOCK_TIMEOUT_SIGNAL)

    def on_signal_survived(self, name: str) -> None:
        """The program's own handler returned: training goes on, and so does the run."""
        self.record.survive_signal(name, at=time.time(), step=int(getattr(self.state, "global_step", 0) or 0))
        if not self.record.status.is_final:
            self.hooks.install()
            self._save(timeout=LOCK_TIMEOUT_SIGNAL)

    def superseded(self) -> None:
        """A new ``train()`` started in this process while this run had not ended."""
        self.fail(Failure(reason="training stopped without finishing (a new train() call started)"))


def failure_from_exception(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> Failure:
    if issubclass(exc_type, KeyboardInterrupt):
        reason = "interrupted (KeyboardInterrupt)"
    else:
        reason = "an uncaught exception"
    text = "".join(tb_module.format_exception(exc_type, exc, tb))
    return Failure(
        reason=reason,
        exc_type=exc_type.__name__,
        message=clean_text(str(exc)),
        traceback=clean_text(text),
    )


def _model_link(args: Any, environ: Mapping[str, str]) -> str | None:
    """Where the trained model ends up: the Hub repo it is pushed to, else the output directory.

    With ``push_to_hub``, the Trainer itself holds the full repo id it created
    (``Trainer.hub_model_id``, e.g. ``owner/name``); ``args.hub_model_id`` may lack the owner.
    """
    if getattr(args, "push_to_hub", False):
        trainer = detect.find_trainer()
        repo = getattr(trainer, "hub_model_id", None) or getattr(args, "hub_model_id", None)
        if repo and "/" in repo and detect.is_hub_id(repo):
            return detect.hub_url(repo, "model", environ)
        if repo:
            return str(repo)
    output_dir = getattr(args, "output_dir", None)
    return str(output_dir) if output_dir else None
