"""Run records: pure data, and the status state machine.

A :class:`RunRecord` is everything the report says about one training run. It knows nothing about
files, Trainers or markdown: the callback fills it in, the store saves it as JSON, the renderer
turns it into markdown. ``to_dict``/``from_dict`` carry a schema version so that state written by
an older trl-reporter still loads.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Status(str, enum.Enum):
    """The four statuses of the reporting guide."""

    IN_PROGRESS = "In Progress"
    SUCCESS = "Success"
    COMPLETED = "Completed"
    FAILURE = "Failure"

    @property
    def is_final(self) -> bool:
        return self is not Status.IN_PROGRESS


class StatusError(ValueError):
    """A transition the state machine forbids, such as downgrading a final status."""


@dataclass
class Link:
    """A Hub model or dataset reference: its id, and whether it is a Hub id at all."""

    name: str
    url: str | None = None
    guessed: bool = False
    note: str | None = None


@dataclass
class Failure:
    """Why a run failed."""

    reason: str
    exc_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    signal: str | None = None


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
    source: str = "trainer"
    step: int | None = None
    higher_is_better: bool | None = None
    added_at: float | None = None


@dataclass
class RunRecord:
    """One training run, as the report shows it."""

    run_id: str
    run_name: str
    experiment: str
    started_at: float
    status: Status = Status.IN_PROGRESS
    ended_at: float | None = None
    base_model: Link | None = None
    dataset: Link | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    changed_arguments: list[tuple[str, str]] = field(default_factory=list)
    host: str | None = None
    # hostname, boot id and PID namespace: a pid means something only where all three match.
    host_id: str | None = None
    pid: int | None = None
    # The process's own start time: tells a live pid from a reused one.
    process_started: float | None = None
    job_id: str | None = None
    job_url: str | None = None
    trackio: TrackioInfo | None = None
    trackio_note: str | None = None
    steps_done: int = 0
    steps_planned: int | None = None
    final_loss: float | None = None
    mean_loss: float | None = None
    stop_reason: str | None = None
    failure: Failure | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    model_link: str | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_at: float | None = None

    # -- state machine -------------------------------------------------------------------------

    def finish(self, status: Status, *, at: float, steps_done: int | None = None) -> None:
        """Move to a final status. A final status is never changed again."""
        if not status.is_final:
            raise StatusError(f"{status.value!r} is not a final status")
        if self.status.is_final:
            raise StatusError(f"run {self.run_name!r} is already {self.status.value}")
        self.status = status
        self.ended_at = at
        if steps_done is not None:
            self.steps_done = steps_done

    def fail(self, failure: Failure, *, at: float, steps_done: int | None = None) -> None:
        """Record a failure, unless the run already has a final status."""
        self.finish(Status.FAILURE, at=at, steps_done=steps_done)
        self.failure = failure

    def reopen(self, *, at: float, step: int) -> None:
        """Continue a run that resumes from a checkpoint: back to In Progress, resumption noted."""
        self.resumed.append({"at": at, "step": step, "previous_status": self.status.value})
        self.status = Status.IN_PROGRESS
        self.ended_at = None
        self.failure = None
        self.stop_reason = None
        self.heartbeat_at = at

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
            self.signals.append({"signal": signal_name, "at": at, "step": step})

    def set_metric(self, benchmark: str, score: float, *, step: int | None, job_link: str | None) -> None:
        """Keep the latest value of a trainer metric (one row per benchmark)."""
        for ev in self.evaluations:
            if ev.source == "trainer" and ev.benchmark == benchmark:
                ev.score, ev.step, ev.job_link = score, step, job_link
                return
        self.evaluations.append(Evaluation(benchmark, score, job_link=job_link, step=step))

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["schema"] = SCHEMA_VERSION
        return json_safe(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ValueError(f"run state has schema {schema!r}; this trl-reporter reads up to {SCHEMA_VERSION}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["status"] = Status(kwargs.get("status", Status.IN_PROGRESS.value))
        for key, sub in (("base_model", Link), ("dataset", Link), ("failure", Failure), ("trackio", TrackioInfo)):
            if kwargs.get(key) is not None:
                kwargs[key] = sub(**kwargs[key])
        kwargs["evaluations"] = [Evaluation(**e) for e in kwargs.get("evaluations", [])]
        for key in ("parameters", "changed_arguments"):
            kwargs[key] = [(str(a), str(b)) for a, b in kwargs.get(key, [])]
        for key in ("resumed", "signals"):
            kwargs[key] = [r for r in kwargs.get(key, []) if isinstance(r, dict) and _is_number(r.get("at"))]
        record = cls(**kwargs)
        for name in ("started_at", "ended_at", "heartbeat_at", "final_loss", "mean_loss"):
            value = getattr(record, name)
            if value is not None and not _is_number(value):
                raise ValueError(f"{name} is not a number: {value!r}")
        if record.started_at is None or not isinstance(record.run_name, str) or not isinstance(record.run_id, str):
            raise ValueError("a run needs run_id, run_name and started_at")
        return record


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_safe(value: Any) -> Any:
    """Convert to what JSON can hold: NaN and infinities become strings, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value
