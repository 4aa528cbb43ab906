"""Run records: pure data, reason codes and the status state machine.

A :class:`RunRecord` is everything the report says about one training run, as values and codes,
never sentences: the words are the template's. It knows nothing about files, Trainers or markdown:
:mod:`~trl_reporter.capture` fills it in, :mod:`~trl_reporter.store` saves it as JSON (and
:mod:`~trl_reporter.schema` reads it back, checking every field), :mod:`~trl_reporter.view` turns
it into plain data for the template.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import StatusError
from .origins import Provenance
from .values import MAX_INT as MAX_INT  # re-exported: records were their home first
from .values import is_finite_number as is_finite_number
from .values import json_safe as json_safe
from .values import to_real as to_real

SCHEMA_VERSION = 2
MAX_PARTS = 64  # Trackio runs of earlier parts kept
MAX_CHANGES = 1000  # parameter changes kept


class Status(str, enum.Enum):
    """The four statuses of the reporting guide."""

    IN_PROGRESS = "In Progress"
    SUCCESS = "Success"
    COMPLETED = "Completed"
    FAILURE = "Failure"

    @property
    def is_final(self) -> bool:
        return self is not Status.IN_PROGRESS


class FailureReason(str, enum.Enum):
    """How a run that did not reach ``on_train_end`` ended."""

    EXCEPTION = "exception"  # uncaught: exc_type, message and traceback say which
    KEYBOARD_INTERRUPT = "keyboard-interrupt"
    SIGNAL = "signal"  # Failure.signal names it
    EXITED = "exited"  # the process exited before training finished
    CELL_FINISHED = "cell-finished"  # a notebook cell ended before training finished
    SUPERSEDED = "superseded"  # a new train() started in the same process
    VANISHED = "vanished"  # killed, out of memory, or the machine restarted
    OTHER = "other"  # state written by an older trl-reporter: Failure.detail has its words


class StopReason(str, enum.Enum):
    """Why a run reached ``on_train_end`` before its planned steps."""

    EARLY = "stopped-early"  # early stopping, or a callback set should_training_stop


class TrackioOff(str, enum.Enum):
    """Why a run has no Trackio dashboard."""

    DISABLED = "disabled"  # ReportCallback(trackio=False), and report_to lacks trackio
    REMOTE_ENVIRONMENT = "remote-environment"  # a variable would upload: trackio_variable names it


class Source(str, enum.Enum):
    """Where an evaluation came from."""

    TRAINER = "trainer"
    API = "api"
    CLI = "cli"
    LM_EVAL = "lm-evaluation-harness"
    LIGHTEVAL = "lighteval"


@dataclass
class Link:
    """A Hub model or dataset reference: its id or path, and its Hub URL when it has one."""

    name: str
    url: str | None = None
    guessed: bool = False  # a dataset id guessed from the datasets cache
    local_path: bool = False


@dataclass
class Failure:
    """Why a run failed."""

    reason: FailureReason
    exc_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    signal: str | None = None
    detail: str | None = None


@dataclass
class TrackioInfo:
    """Where the run's Trackio dashboard lives."""

    project: str
    run: str
    base_url: str
    local: bool = True


@dataclass
class Evaluation:
    """One benchmark score of a run."""

    benchmark: str
    score: float | str
    job_link: str | None = None
    model_link: str | None = None
    source: Source = Source.TRAINER
    step: int | None = None
    higher_is_better: bool | None = None
    added_at: float | None = None


@dataclass
class Resumption:
    """The run continued from a checkpoint in a new ``train()``: how the part before ended,
    and where the next one started."""

    at: float
    step: int
    previous_status: Status
    # The part before: how it ended (its failure, if it failed), at which step and when.
    ended: FailureReason | None = None
    ended_signal: str | None = None
    ended_step: int | None = None
    ended_at: float | None = None
    # Where training resumed: the checkpoint's folder name, the host and the process.
    checkpoint: str | None = None
    host: str | None = None
    pid: int | None = None
    logs_url: str | None = None  # the Job logs of the part before


@dataclass
class SignalNote:
    """A signal arrived and the program's own handler let training go on."""

    signal: str
    at: float
    step: int


@dataclass
class RunRecord:
    """One training run, as the report shows it."""

    key: str  # the run's state file stem, unique within its experiment
    run_name: str
    experiment: str
    started_at: float
    status: Status = Status.IN_PROGRESS
    ended_at: float | None = None
    base_model: Link | None = None
    dataset: Link | None = None
    # (code, raw value) rows of the curated table, and (argument, raw value) of the others changed.
    parameters: list[tuple[str, Any]] = field(default_factory=list)
    changed_arguments: list[tuple[str, Any]] = field(default_factory=list)
    host: str | None = None
    # hostname, boot id and PID namespace: a pid means something only where all three match.
    host_id: str | None = None
    pid: int | None = None
    # The process's own start time: tells a live pid from a reused one.
    process_started: float | None = None
    job_id: str | None = None
    job_url: str | None = None
    trackio: TrackioInfo | None = None
    trackio_off: TrackioOff | None = None
    trackio_variable: str | None = None
    steps_done: int = 0
    steps_planned: int | None = None
    final_loss: float | None = None
    mean_loss: float | None = None
    stop_reason: StopReason | None = None
    failure: Failure | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    model_link: str | None = None
    resumed: list[Resumption] = field(default_factory=list)
    signals: list[SignalNote] = field(default_factory=list)
    heartbeat_at: float | None = None
    # What the run's history (a file of its own, see history.py) holds: its curves by name, the
    # training loss downsampled for a sparkline, and the lowest eval_loss logged.
    curves: list[str] = field(default_factory=list)
    trend: list[float] = field(default_factory=list)
    best_eval_loss: float | None = None
    # Which run this is wherever its file travels (a pull, a publish): made once, at its start,
    # and kept through resumptions; and how many times its state was saved, so that of two
    # copies of the same run the newer wins.
    run_id: str | None = None
    revision: int = 0
    # Where the report is published besides this project (see publish.py), as shown to readers.
    published_to: list[str] = field(default_factory=list)
    provenance: Provenance | None = None  # what produced it (see origins.py)
    # A run resumed after interruptions: the seconds between its parts (not training time), the
    # Trackio runs of its earlier parts, and the parameters that a resumed part changed:
    # (code, value, from step).
    paused: float = 0.0
    trackio_earlier: list[str] = field(default_factory=list)
    parameter_changes: list[tuple[str, Any, int]] = field(default_factory=list)

    # -- state machine -------------------------------------------------------------------------

    def finish(self, status: Status, *, at: float, steps_done: int | None = None) -> None:
        """Move to a final status. Raises :class:`StatusError` if the run already has one: a
        final status is never changed."""
        if not status.is_final:
            raise StatusError(f"{status.value!r} is not a final status")
        if self.status.is_final:
            raise StatusError(f"run {self.run_name!r} is already {self.status.value}")
        self.status = status
        self.ended_at = at
        if steps_done is not None:
            self.steps_done = steps_done

    def fail(self, failure: Failure, *, at: float, steps_done: int | None = None) -> None:
        """Move to Failure for ``failure``; raises :class:`StatusError`, like :meth:`finish`, if the
        run already has a final status."""
        self.finish(Status.FAILURE, at=at, steps_done=steps_done)
        self.failure = failure

    def reopen(self, *, at: float, step: int, checkpoint: str | None = None, saved_at: float | None = None) -> None:
        """Continue a run that resumes from a checkpoint: back to In Progress, with how its
        last part ended and where it resumed noted; the gap does not count as training."""
        failure = self.failure
        # A part that vanished lived at least until it saved the checkpoint this resumes from.
        last_seen = min(at, max(self.ended_at or self.heartbeat_at or self.started_at, saved_at or 0.0))
        self.resumed.append(
            Resumption(
                at=at,
                step=step,
                previous_status=self.status,
                # Still In Progress: the process that trained it is gone (its checkpoint resumes).
                ended=failure.reason if failure else (None if self.status.is_final else FailureReason.VANISHED),
                ended_signal=failure.signal if failure else None,
                ended_step=max(self.steps_done, step),
                ended_at=last_seen,
                checkpoint=checkpoint,
            )
        )
        self.paused += max(0.0, at - last_seen)
        self.status = Status.IN_PROGRESS
        self.ended_at = None
        self.failure = None
        self.stop_reason = None
        self.heartbeat_at = at

    def take_process_of(self, current: RunRecord, step: int) -> None:
        """Resuming: this saved run continues in ``current``'s process. The parameters it started
        with stay; a value the new process changed is noted with the step it applies from."""
        before = dict(self.parameters)
        latest = {code: value for code, value, _ in self.parameter_changes}
        for code, value in current.parameters:
            if code in before and latest.get(code, before[code]) != value:
                self.parameter_changes.append((code, value, step))
        if self.resumed:  # the logs of the part that ended stay linked from its note
            self.resumed[-1].logs_url = self.job_url
        for name in (
            "host",
            "host_id",
            "pid",
            "process_started",
            "job_id",
            "job_url",
            "steps_planned",
            "model_link",
            "trackio_off",
            "trackio_variable",
            "published_to",
        ):
            setattr(self, name, getattr(current, name))
        if self.resumed:
            self.resumed[-1].host, self.resumed[-1].pid = current.host, current.pid
        # The new part logs to a Trackio run of its own, found once it starts. Both lists stay
        # within what a saved run may hold, however often it is resumed: the newest are kept.
        if self.trackio is not None and self.trackio.run not in self.trackio_earlier and len(self.trackio.run) <= 200:
            self.trackio_earlier = [*self.trackio_earlier, self.trackio.run][-MAX_PARTS:]
        self.parameter_changes = self.parameter_changes[-MAX_CHANGES:]
        self.trackio = current.trackio

    def survive_signal(self, signal_name: str, *, at: float, step: int) -> None:
        """Take back a Failure recorded for a signal whose handler let training go on.

        The failure was written before the program's own handler ran, in case that handler ends
        the process; when the handler returns instead, the run is alive and In Progress again.
        """
        if self.status is Status.FAILURE and self.failure is not None and self.failure.signal == signal_name:
            self.status = Status.IN_PROGRESS
            self.ended_at = None
            self.failure = None
            self.heartbeat_at = at
            self.signals.append(SignalNote(signal=signal_name, at=at, step=step))

    def set_metric(self, benchmark: str, score: float, *, step: int | None, job_link: str | None) -> None:
        """Keep the latest value of a trainer metric (one row per benchmark)."""
        for ev in self.evaluations:
            if ev.source is Source.TRAINER and ev.benchmark == benchmark:
                ev.score, ev.step, ev.job_link = score, step, job_link
                return
        self.evaluations.append(Evaluation(benchmark, score, job_link=job_link, step=step))

    def shown_evaluations(self) -> list[Evaluation]:
        """One evaluation per benchmark, as the report shows them: a benchmark added again
        replaces the score shown (in its first place); every row stays in :attr:`evaluations`."""
        latest: dict[str, Evaluation] = {}
        for ev in self.evaluations:
            latest[ev.benchmark] = ev
        return list(latest.values())

    def shown_model_link(self) -> str | None:
        """The run's one model link: the latest one an evaluation gave, else the run's own."""
        given = [ev.model_link for ev in self.evaluations if ev.model_link]
        return given[-1] if given else self.model_link

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; :func:`trl_reporter.schema.load_run` reads it back."""
        data: dict[str, Any] = json_safe(dataclasses.asdict(self))
        data["schema"] = SCHEMA_VERSION
        return data
