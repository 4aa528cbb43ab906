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

    @classmethod
    def from_dict(cls, row: object) -> Evaluation:
        """An evaluation from its saved form, checked like a run (:meth:`RunRecord.from_dict`)."""
        if not isinstance(row, dict):
            raise RecordError("an evaluation is not a JSON object")
        f = _Fields(row, "evaluation ")
        benchmark = f.text("benchmark")
        if not benchmark.strip():
            raise RecordError("an evaluation has an empty benchmark name")
        raw = row.get("score")
        score: float | str | None = raw if isinstance(raw, str) and len(raw) <= 200 else None
        number = read_real(raw)
        if number is not None:
            score = number
        if score is None:
            raise RecordError(f"evaluation {benchmark[:80]!r} has no readable score")
        return cls(
            benchmark=benchmark,
            score=score,
            job_link=f.text("job_link", optional=True),
            model_link=f.text("model_link", optional=True),
            source=f.text("source", optional=True) or "trainer",
            step=f.count("step", optional=True),
            higher_is_better=f.flag("higher_is_better", optional=True),
            added_at=f.moment("added_at", optional=True),
        )


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
    def from_dict(cls, data: object, skipped: list[str] | None = None) -> RunRecord:
        """A run from its saved form, every field checked: saved state is input from a stranger
        (committed, merged, pulled). Raises :class:`RecordError` naming the first bad field. A bad
        evaluation costs only itself: it is left out, and why is appended to ``skipped``."""
        if not isinstance(data, dict):
            raise RecordError("a run's state is not a JSON object")
        schema = data.get("schema", SCHEMA_VERSION)
        if not _is_int(schema) or schema > SCHEMA_VERSION:
            raise RecordError(f"run state has schema {schema!r}; this trl-reporter reads up to {SCHEMA_VERSION}")
        f = _Fields(data)
        status = f.text("status", optional=True) or Status.IN_PROGRESS.value
        try:
            parsed_status = Status(status)
        except ValueError:
            raise RecordError(f"status {status!r} is not one of the guide's four") from None
        record = cls(
            run_id=f.text("run_id"),
            run_name=f.text("run_name"),
            experiment=f.text("experiment", optional=True) or "",
            started_at=f.moment("started_at"),
            status=parsed_status,
            ended_at=f.moment("ended_at", optional=True),
            base_model=f.sub("base_model", _link),
            dataset=f.sub("dataset", _link),
            parameters=f.pairs("parameters"),
            changed_arguments=f.pairs("changed_arguments"),
            host=f.text("host", optional=True),
            host_id=f.text("host_id", optional=True),
            pid=f.count("pid", optional=True),
            process_started=f.real("process_started", optional=True),
            job_id=f.text("job_id", optional=True),
            job_url=f.text("job_url", optional=True),
            trackio=f.sub("trackio", _trackio),
            trackio_note=f.text("trackio_note", optional=True),
            steps_done=f.count("steps_done", optional=True) or 0,
            steps_planned=f.count("steps_planned", optional=True),
            final_loss=f.real("final_loss", optional=True),
            mean_loss=f.real("mean_loss", optional=True),
            stop_reason=f.text("stop_reason", optional=True),
            failure=f.sub("failure", _failure),
            evaluations=[],
            model_link=f.text("model_link", optional=True),
            resumed=f.rows("resumed", _resumption),
            signals=f.rows("signals", _signal_note),
            heartbeat_at=f.moment("heartbeat_at", optional=True),
        )
        if not record.run_id or not record.run_name:
            raise RecordError("a run needs a run_id and a run_name")
        if record.host_id is not None and record.host_id.count("/") < 2:
            raise RecordError(f"host_id {record.host_id!r} is not <host>/<boot id>/<pid namespace>")
        evaluations = data.get("evaluations", [])
        if not isinstance(evaluations, list):
            raise RecordError("evaluations is not a list")
        for row in evaluations:
            try:
                record.evaluations.append(Evaluation.from_dict(row))
            except RecordError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
        return record


# -- reading saved state ---------------------------------------------------------------------------

# datetime cannot show a moment after 9999-12-31 23:59:59 UTC.
MAX_TIMESTAMP = 253402300799.0
# Larger integers are no step count, pid or size; JSON itself would keep them.
MAX_INT = 2**63 - 1
MAX_TEXT = 1_000_000
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf, "-infinity": -math.inf}


class RecordError(ValueError):
    """Saved state that is not what trl-reporter writes: a wrong type or an impossible value."""


class _Fields:
    """Typed, checked reads of one saved JSON object."""

    def __init__(self, data: dict[str, Any], where: str = "") -> None:
        self.data = data
        self.where = where

    def _bad(self, key: str, expected: str) -> RecordError:
        value = repr(self.data.get(key))
        return RecordError(f"{self.where}{key} is not {expected}: {value[:80]}")

    def _get(self, key: str, optional: bool) -> Any:
        value = self.data.get(key)
        if value is None and not optional:
            raise RecordError(f"{self.where}{key} is missing")
        return value

    def text(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise self._bad(key, "a string")
        return value

    def count(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and (not _is_int(value) or not 0 <= value <= MAX_INT):
            raise self._bad(key, "a whole number from 0")
        return value

    def real(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is None:
            return None
        number = read_real(value)
        if number is None:
            raise self._bad(key, "a number")
        return number

    def moment(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and (not _is_number(value) or not 0 <= value <= MAX_TIMESTAMP):
            raise self._bad(key, "a time (seconds since 1970, before the year 10000)")
        return None if value is None else float(value)

    def flag(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def sub(self, key: str, read: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return read(_Fields(value, f"{self.where}{key}."))

    def pairs(self, key: str) -> list[tuple[str, str]]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) and len(x) <= MAX_TEXT for x in p)
            for p in value
        ):
            raise self._bad(key, "a list of [name, value] strings")
        return [(a, b) for a, b in value]

    def rows(self, key: str, read: Any) -> list[Any]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise self._bad(key, "a list of objects")
        return [read(_Fields(r, f"{self.where}{key}[].")) for r in value]


def read_real(value: object) -> float | int | None:
    """A number as saved: an int or float, or "nan"/"inf"/"-inf" (JSON has no such numbers).
    ``None`` for anything else, and for an integer too large to be a float."""
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    if not _is_number(value):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        return None
    return value  # type: ignore[return-value]


def to_real(value: object) -> float | int | None:
    """A metric as the Trainer gave it, made storable: ints stay ints while they fit 64 bits,
    larger ones become floats (infinite past a float's range), NaN and infinities stay floats
    (saved as strings). ``None`` for what is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # numpy and torch scalars are numbers too
        item = getattr(value, "item", None)
        if item is None or isinstance(value, bool):
            return None
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _link(f: _Fields) -> Link:
    return Link(name=f.text("name"), url=f.text("url", optional=True), guessed=bool(f.flag("guessed", optional=True)),
                note=f.text("note", optional=True))


def _failure(f: _Fields) -> Failure:
    return Failure(reason=f.text("reason"), exc_type=f.text("exc_type", optional=True),
                   message=f.text("message", optional=True), traceback=f.text("traceback", optional=True),
                   signal=f.text("signal", optional=True))


def _trackio(f: _Fields) -> TrackioInfo:
    local = f.flag("local", optional=True)
    return TrackioInfo(project=f.text("project"), run=f.text("run"), base_url=f.text("base_url"),
                       local=True if local is None else local)


def _resumption(f: _Fields) -> dict[str, Any]:
    return {"at": f.moment("at"), "step": f.count("step", optional=True) or 0,
            "previous_status": f.text("previous_status", optional=True) or "?"}


def _signal_note(f: _Fields) -> dict[str, Any]:
    return {"signal": f.text("signal", optional=True) or "?", "at": f.moment("at"),
            "step": f.count("step", optional=True) or 0}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_safe(value: Any) -> Any:
    """Convert to what JSON can hold and trl-reporter reads back: NaN and infinities become
    strings, integers past 64 bits floats, tuples lists."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        value = to_real(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value
