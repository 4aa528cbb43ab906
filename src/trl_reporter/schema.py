"""Reading saved state back, as input from a stranger.

State under ``training_reports/.trl-reporter/`` is committed, merged and pulled, so every field is
checked here before a record exists: types, ranges (a time before the year 10000, a count that
fits 64 bits), and the codes of :mod:`~trl_reporter.records`. A bad run raises
:class:`~trl_reporter.errors.RecordError` naming the field; a bad evaluation inside a run costs
only itself. State written by trl-reporter 0.1 (schema 1, with sentences where codes are now) is
read too.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import RecordError
from .fields import Fields, read_real
from .migrate import from_schema_1
from .origins import Code, Provenance
from .records import (
    MAX_CHANGES,
    MAX_INT,
    MAX_PARTS,
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
_RUN_ID = re.compile(r"[0-9a-f]{32}")


def is_run_id(value: str) -> bool:
    return _RUN_ID.fullmatch(value) is not None


def load_run(data: object, skipped: list[str] | None = None) -> RunRecord:
    """A run from its saved form, every field checked. Raises :class:`RecordError` naming the first
    bad field. A bad evaluation is left out, and why is appended to ``skipped``."""
    if not isinstance(data, dict):
        raise RecordError("a run's state is not a JSON object")
    schema = data.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA_VERSION:
        raise RecordError(f"run state has schema {schema!r}; this trl-reporter reads 1 to {SCHEMA_VERSION}")
    v1 = schema == 1
    f = Fields(from_schema_1(data) if v1 else data)
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
        provenance=f.sub("provenance", _provenance),
        paused=_seconds(f.opt_real("paused")),
        trackio_earlier=f.names("trackio_earlier", limit=MAX_PARTS),
        parameter_changes=_parameter_changes(f),
    )
    if not record.key or not record.run_name:
        raise RecordError("a run needs a key and a run_name")
    if record.run_id is not None and not is_run_id(record.run_id):
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
    f = Fields(row, "evaluation ")
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


def _link(f: Fields) -> Link:
    return Link(
        name=f.text("name"),
        url=f.opt_text("url"),
        guessed=bool(f.flag("guessed")),
        local_path=bool(f.flag("local_path")),
    )


def _failure(f: Fields) -> Failure:
    return Failure(
        reason=f.code("reason", FailureReason) or FailureReason.OTHER,
        exc_type=f.opt_text("exc_type"),
        message=f.opt_text("message"),
        traceback=f.opt_text("traceback"),
        signal=f.opt_text("signal"),
        detail=f.opt_text("detail"),
    )


def _trackio(f: Fields) -> TrackioInfo:
    local = f.flag("local")
    return TrackioInfo(
        project=f.text("project"),
        run=f.text("run"),
        base_url=f.text("base_url"),
        local=True if local is None else local,
    )


def _resumption(f: Fields) -> Resumption:
    return Resumption(
        at=f.moment("at"),
        step=f.opt_count("step") or 0,
        previous_status=f.code("previous_status", Status) or Status.FAILURE,
        ended=f.code("ended", FailureReason),
        ended_signal=f.opt_text("ended_signal"),
        ended_step=f.opt_count("ended_step"),
        ended_at=f.opt_moment("ended_at"),
        checkpoint=f.opt_text("checkpoint"),
        host=f.opt_text("host"),
        pid=f.opt_count("pid"),
        logs_url=f.opt_text("logs_url"),
    )


def _seconds(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) and value > 0 else 0.0


def _parameter_changes(f: Fields) -> list[tuple[str, Any, int]]:
    rows = f.data.get("parameter_changes") or []
    if not isinstance(rows, list) or len(rows) > MAX_CHANGES:
        raise f.bad("parameter_changes", f"a list of at most {MAX_CHANGES} [name, value, step]")
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and len(row[0]) <= 200):
            raise f.bad("parameter_changes", "a list of [name, value, step]")
        if type(row[2]) is not int or not 0 <= row[2] <= MAX_INT:
            raise f.bad("parameter_changes", "a list of [name, value, step]")
    return [(name, value, step) for name, value, step in rows]


def _signal_note(f: Fields) -> SignalNote:
    return SignalNote(signal=f.opt_text("signal") or "?", at=f.moment("at"), step=f.opt_count("step") or 0)


def _provenance(f: Fields) -> Provenance:
    code = f.sub("code", _code) or Code()
    return Provenance(
        code=code,
        command=[str(w) for w in f.texts("command", limit=10_000)],
        notebook=f.opt_text("notebook"),
        versions=[(str(k), str(v)) for k, v in f.pairs("versions")],
        model_revision=f.opt_text("model_revision"),
        dataset_revision=f.opt_text("dataset_revision"),
        dataset_fingerprint=f.opt_text("dataset_fingerprint"),
        hardware=[(str(k), str(v)) for k, v in f.pairs("hardware")],
        seconds=f.opt_real("seconds") or 0.0,
    )


def _code(f: Fields) -> Code:
    commit = f.opt_text("commit")
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise RecordError(f"code.commit {commit[:80]!r} is not a commit id")
    untracked = [str(w) for w in f.texts("untracked", limit=10_000)]
    patch_id = f.opt_text("patch_id")
    if patch_id is not None and not re.fullmatch(r"[0-9a-f]{12}", patch_id):
        raise RecordError(f"code.patch_id {patch_id[:80]!r} is not 12 hexadecimal digits")
    return Code(
        reason=f.opt_text("reason"),
        commit=commit,
        branch=f.opt_text("branch"),
        dirty=bool(f.flag("dirty")),
        untracked=untracked,
        untracked_count=max(f.opt_count("untracked_count") or 0, len(untracked)),
        commit_url=f.opt_text("commit_url"),
        patch=bool(f.flag("patch")),
        patch_cut=bool(f.flag("patch_cut")),
        patch_id=patch_id,
        patch_files=f.opt_count("patch_files") or 0,
        left_out=f.opt_count("left_out") or 0,
    )
