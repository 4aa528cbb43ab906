"""Reading saved state back, as input from a stranger.

State under ``training_reports/.trl-reporter/`` is committed, merged and pulled, so every field is
checked here before a record exists: types, ranges (a time before the year 10000, a count that
fits 64 bits), and the codes of :mod:`~trl_reporter.records`. A bad run raises
:class:`~trl_reporter.errors.RecordError` naming the field; a bad evaluation inside a run costs
only itself. State written by trl-reporter 0.1 (schema 1, with sentences where codes are now) is
read too.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import RecordError
from .migrate import from_schema_1
from .records import (
    MAX_INT,
    SCHEMA_VERSION,
    Evaluation,
    Failure,
    FailureReason,
    Link,
    Resumption,
    RunRecord,
    SignalNote,
    Source,
    Status,
    StopReason,
    TrackioInfo,
    TrackioOff,
)

# datetime cannot show a moment after 9999-12-31 23:59:59 UTC.
MAX_TIMESTAMP = 253402300799.0
MAX_TEXT = 1_000_000
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf, "-infinity": -math.inf}
_RUN_ID = re.compile(r"[0-9a-f]{32}")
E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


def _valid_unicode(text: str) -> bool:
    """Whether ``text`` has no lone surrogates (JSON's "\\ud800" escapes allow them; UTF-8 cannot
    hold them, and trl-reporter writes them as "\\udcff" text instead)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_real(value: object) -> float | int | None:
    """A number as saved: an int or float, or "nan"/"inf"/"-inf" (JSON has no such numbers).
    ``None`` for anything else, and for an integer too large to be a float."""
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        return None
    return value


class _Fields:
    """Typed, checked reads of one saved JSON object."""

    def __init__(self, data: dict[str, Any], where: str = "") -> None:
        self.data = data
        self.where = where

    def bad(self, key: str, expected: str) -> RecordError:
        return RecordError(f"{self.where}{key} is not {expected}: {repr(self.data.get(key))[:80]}")

    def text(self, key: str) -> str:
        value = self.opt_text(key)
        if value is None:
            raise RecordError(f"{self.where}{key} is missing")
        return value

    # These run for every field of every saved file: exact type checks first, the rest only for
    # what passes them.
    def opt_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not str or len(value) > MAX_TEXT or not _valid_unicode(value):
            raise self.bad(key, "a string of valid Unicode")
        return value

    def opt_count(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value <= MAX_INT:
            raise self.bad(key, "a whole number from 0")
        return value

    def opt_real(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        number = read_real(value)
        if number is None:
            raise self.bad(key, "a number")
        return float(number)

    def moment(self, key: str) -> float:
        value = self.opt_moment(key)
        if value is None:
            raise RecordError(f"{self.where}{key} is missing")
        return value

    def opt_moment(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) not in (int, float) or not 0 <= value <= MAX_TIMESTAMP:
            raise self.bad(key, "a time (seconds since 1970, before the year 10000)")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.bad(key, "true or false")
        return value

    def code(self, key: str, kind: type[E]) -> E | None:
        value = self.opt_text(key)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise self.bad(key, f"one of {', '.join(repr(m.value) for m in kind)}") from None

    def sub(self, key: str, read: Callable[[_Fields], T]) -> T | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.bad(key, "an object")
        return read(_Fields(value, f"{self.where}{key}."))

    def pairs(self, key: str) -> list[tuple[str, Any]]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and len(p[0]) <= MAX_TEXT for p in value
        ):
            raise self.bad(key, "a list of [name, value] pairs")
        return [(name, item) for name, item in value]

    def names(self, key: str, limit: int = 16) -> list[str]:
        value = self.data.get(key) or []
        if (
            not isinstance(value, list)
            or len(value) > limit
            or not all(type(v) is str and 0 < len(v) <= 200 and _valid_unicode(v) for v in value)
        ):
            raise self.bad(key, f"a list of at most {limit} names")
        return list(value)

    def reals(self, key: str, limit: int = 64) -> list[float]:
        value = self.data.get(key) or []
        numbers = [read_real(v) for v in value] if isinstance(value, list) and len(value) <= limit else None
        if numbers is None or any(n is None or not math.isfinite(n) for n in numbers):
            raise self.bad(key, f"a list of at most {limit} finite numbers")
        return [float(n) for n in numbers if n is not None]

    def rows(self, key: str, read: Callable[[_Fields], T]) -> list[T]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise self.bad(key, "a list of objects")
        return [read(_Fields(r, f"{self.where}{key}[].")) for r in value]


def load_run(data: object, skipped: list[str] | None = None) -> RunRecord:
    """A run from its saved form, every field checked. Raises :class:`RecordError` naming the first
    bad field. A bad evaluation is left out, and why is appended to ``skipped``."""
    if not isinstance(data, dict):
        raise RecordError("a run's state is not a JSON object")
    schema = data.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA_VERSION:
        raise RecordError(f"run state has schema {schema!r}; this trl-reporter reads 1 to {SCHEMA_VERSION}")
    v1 = schema == 1
    f = _Fields(from_schema_1(data) if v1 else data)
    record = RunRecord(
        key=f.text("key"),
        run_name=f.text("run_name"),
        experiment=f.opt_text("experiment") or "",
        started_at=f.moment("started_at"),
        status=f.code("status", Status) or Status.IN_PROGRESS,
        ended_at=f.opt_moment("ended_at"),
        base_model=f.sub("base_model", _link),
        dataset=f.sub("dataset", _link),
        parameters=f.pairs("parameters"),
        changed_arguments=f.pairs("changed_arguments"),
        host=f.opt_text("host"),
        host_id=f.opt_text("host_id"),
        pid=f.opt_count("pid"),
        process_started=f.opt_real("process_started"),
        job_id=f.opt_text("job_id"),
        job_url=f.opt_text("job_url"),
        trackio=f.sub("trackio", _trackio),
        trackio_off=f.code("trackio_off", TrackioOff),
        trackio_variable=f.opt_text("trackio_variable"),
        steps_done=f.opt_count("steps_done") or 0,
        steps_planned=f.opt_count("steps_planned"),
        final_loss=f.opt_real("final_loss"),
        mean_loss=f.opt_real("mean_loss"),
        stop_reason=f.code("stop_reason", StopReason),
        failure=f.sub("failure", _failure),
        model_link=f.opt_text("model_link"),
        resumed=f.rows("resumed", _resumption),
        signals=f.rows("signals", _signal_note),
        heartbeat_at=f.opt_moment("heartbeat_at"),
        curves=f.names("curves"),
        trend=f.reals("trend"),
        best_eval_loss=f.opt_real("best_eval_loss"),
        run_id=f.opt_text("run_id"),
        revision=f.opt_count("revision") or 0,
        published_to=f.names("published_to", limit=4),
    )
    if not record.key or not record.run_name:
        raise RecordError("a run needs a key and a run_name")
    if record.run_id is not None and not _RUN_ID.fullmatch(record.run_id):
        raise RecordError(f"run_id {record.run_id[:80]!r} is not 32 hexadecimal digits")
    if record.host_id is not None and record.host_id.count("/") < 2:
        raise RecordError(f"host_id {record.host_id[:80]!r} is not <host>/<boot id>/<pid namespace>")
    evaluations = data.get("evaluations", [])
    if not isinstance(evaluations, list):
        raise RecordError("evaluations is not a list")
    for row in evaluations:
        try:
            record.evaluations.append(load_evaluation(row))
        except RecordError as exc:
            if skipped is not None:
                skipped.append(str(exc))
    return record


def load_evaluation(row: object) -> Evaluation:
    """An evaluation from its saved form, checked like a run (:func:`load_run`)."""
    if not isinstance(row, dict):
        raise RecordError("an evaluation is not a JSON object")
    f = _Fields(row, "evaluation ")
    benchmark = f.text("benchmark")
    if not benchmark.strip():
        raise RecordError("an evaluation has an empty benchmark name")
    raw = row.get("score")
    number = read_real(raw)
    score: float | str | None = (
        number if number is not None else raw if isinstance(raw, str) and len(raw) <= 200 else None
    )
    if score is None:
        raise RecordError(f"evaluation {benchmark[:80]!r} has no readable score")
    return Evaluation(
        benchmark=benchmark,
        score=score,
        job_link=f.opt_text("job_link"),
        model_link=f.opt_text("model_link"),
        source=f.code("source", Source) or Source.TRAINER,
        step=f.opt_count("step"),
        higher_is_better=f.flag("higher_is_better"),
        added_at=f.opt_moment("added_at"),
    )


def _link(f: _Fields) -> Link:
    return Link(
        name=f.text("name"),
        url=f.opt_text("url"),
        guessed=bool(f.flag("guessed")),
        local_path=bool(f.flag("local_path")),
    )


def _failure(f: _Fields) -> Failure:
    return Failure(
        reason=f.code("reason", FailureReason) or FailureReason.OTHER,
        exc_type=f.opt_text("exc_type"),
        message=f.opt_text("message"),
        traceback=f.opt_text("traceback"),
        signal=f.opt_text("signal"),
        detail=f.opt_text("detail"),
    )


def _trackio(f: _Fields) -> TrackioInfo:
    local = f.flag("local")
    return TrackioInfo(
        project=f.text("project"),
        run=f.text("run"),
        base_url=f.text("base_url"),
        local=True if local is None else local,
    )


def _resumption(f: _Fields) -> Resumption:
    return Resumption(
        at=f.moment("at"),
        step=f.opt_count("step") or 0,
        previous_status=f.code("previous_status", Status) or Status.FAILURE,
    )


def _signal_note(f: _Fields) -> SignalNote:
    return SignalNote(signal=f.opt_text("signal") or "?", at=f.moment("at"), step=f.opt_count("step") or 0)
