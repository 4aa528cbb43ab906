"""Run records -> the plain data a report template reads.

The view orders and groups runs, decides what is stale and which score is best, and checks every
URL, but writes no word and no markdown: values stay values (seconds, counts, codes, names), and
the template (with the filters of :mod:`~trl_reporter.template`) owns every word a reader sees.
The result holds only dicts, lists, strings, numbers, booleans and ``None``, so a template can
never reach a Python object through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import liveness, metrics, urls
from .chartfiles import Charts
from .markdown import safe_url
from .records import Evaluation, Link, RunRecord, Source, Status, is_finite_number
from .shapes import parameter

MAX_MESSAGE = 500
# Benchmark columns of the summary table; every score is in the evaluations tables.
MAX_SUMMARY_BENCHMARKS = 6


def _number(score: float | str) -> float | None:
    return float(score) if is_finite_number(score) else None


def in_experiment_table(ev: Evaluation) -> bool:
    """Benchmark scores, and of the trainer's own metrics its eval_loss: the rest (token accuracy,
    entropy, ...) stays in the run's section."""
    return ev.source is not Source.TRAINER or ev.benchmark == "eval_loss"


def best_scores(runs: Sequence[RunRecord]) -> dict[str, tuple[float, str, str]]:
    """``benchmark -> (best score, direction, where the direction came from)`` for every benchmark
    of the experiment table that at least two runs share and whose better direction is known."""
    by_benchmark: dict[str, list[tuple[float, Evaluation]]] = {}
    for run in runs:
        for ev in run.shown_evaluations():
            value = _number(ev.score)
            if value is not None and in_experiment_table(ev):
                by_benchmark.setdefault(ev.benchmark, []).append((value, ev))
    best = {}
    for name, scored in by_benchmark.items():
        given = next((ev.higher_is_better for _, ev in scored if ev.higher_is_better is not None), None)
        way, source = metrics.direction(name, given)
        if len(scored) >= 2 and way is not None and source is not None:
            pick = min if way == metrics.LOWER else max
            best[name] = (pick(value for value, _ in scored), way, source)
    return best


def _link(link: Link | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {"name": link.name, "url": safe_url(link.url), "guessed": link.guessed, "local_path": link.local_path}


def _evaluation(ev: Evaluation, model: str | None, best: dict[str, tuple[float, str, str]]) -> dict[str, Any]:
    value = _number(ev.score)
    top = best.get(ev.benchmark)
    return {
        "benchmark": ev.benchmark,
        "score": ev.score,
        "best": {"direction": top[1], "source": top[2]}
        if top and in_experiment_table(ev) and value == top[0]
        else None,
        "job_url": safe_url(ev.job_link),
        "from_trainer": ev.source is Source.TRAINER,
        "in_experiment_table": in_experiment_table(ev),
        "model": model,
        "model_url": safe_url(model),
    }


def _trackio(run: RunRecord) -> dict[str, Any] | None:
    info = run.trackio
    if info is None:
        return None
    return {
        "url": safe_url(urls.trackio_url(info.base_url, info.project, [info.run])),
        "local": info.local,
        "project": info.project,
    }


def _row_key(code: str, value: Any) -> tuple[str, str]:
    """What identifies a parameter row across runs: its code, or the name of a free-form row."""
    if code == "text" and isinstance(value, list) and value:
        return code, str(value[0])
    return code, ""


def _parameters(run: RunRecord, previous: RunRecord | None) -> list[dict[str, Any]]:
    """The run's parameter rows, each marked with the previous run's value where it differs."""
    before = {_row_key(c, v): v for c, v in previous.parameters} if previous is not None else None
    rows = []
    for code, value in run.parameters:
        row = parameter(code, value)
        key = _row_key(code, value)
        row["changed"] = before is not None and (key not in before or before[key] != value)
        row["was"] = parameter(code, before[key]) if row["changed"] and before and key in before else None
        rows.append(row)
    return rows


def _changes(run: RunRecord, first: RunRecord) -> list[dict[str, Any]]:
    """The parameter rows of ``run`` that differ from the first run of its group."""
    base = {_row_key(c, v): v for c, v in first.parameters}
    return [
        parameter(code, value)
        for code, value in run.parameters
        if base.get(_row_key(code, value), _MISSING) != value and code != "parameters"
    ]


_MISSING = object()


def _trainer_eval_loss(run: RunRecord) -> float | None:
    """The trainer's latest eval_loss, for a run saved before histories were kept."""
    for ev in run.evaluations:
        if ev.source is Source.TRAINER and ev.benchmark == "eval_loss":
            return _number(ev.score)
    return None


def _run(
    run: RunRecord,
    now: float | None,
    best: dict[str, tuple[float, str, str]],
    previous: RunRecord | None,
    first: RunRecord | None,
    chart: str | None,
) -> dict[str, Any]:
    failure = run.failure
    message = (failure.message or "").strip() if failure else ""
    seen = liveness.last_sign_of_life(run)
    stale = now is not None and liveness.stale(run, now)
    model = run.shown_model_link()
    shown = [_evaluation(ev, model, best) for ev in run.shown_evaluations()]
    last_moment = run.ended_at if run.ended_at is not None else max(seen, run.started_at)
    return {
        "key": run.key,
        "name": run.run_name,
        "status": run.status.value,
        "started": run.started_at,
        "ended": run.ended_at,
        "elapsed": last_moment - run.started_at,
        "steps_done": run.steps_done,
        "steps_planned": run.steps_planned,
        "parameters": _parameters(run, previous),
        "first": first is None,
        "changes": _changes(run, first) if first is not None else [],
        "changed_arguments": [list(p) for p in run.changed_arguments],
        "pid": run.pid,
        "host": run.host,
        "job_id": run.job_id,
        "job_url": safe_url(run.job_url),
        "stale": {"since": seen, "quiet_for": now - seen} if stale and now is not None else None,
        "final_loss": run.final_loss,
        "mean_loss": run.mean_loss,
        "diverged": run.final_loss is not None and not math.isfinite(run.final_loss),
        "stop_reason": run.stop_reason.value if run.stop_reason else None,
        "failure": None
        if failure is None
        else {
            "reason": failure.reason.value,
            "exc_type": failure.exc_type,
            "message": message[:MAX_MESSAGE] + "…" if len(message) > MAX_MESSAGE else message,
            "signal": failure.signal,
            "detail": failure.detail,
            "traceback": failure.traceback or None,
        },
        "signals": [{"signal": s.signal, "step": s.step, "at": s.at} for s in run.signals],
        "resumed": [{"step": r.step, "at": r.at, "previous_status": r.previous_status.value} for r in run.resumed],
        "trackio": _trackio(run),
        "trackio_off": run.trackio_off.value if run.trackio_off else None,
        "trackio_variable": run.trackio_variable,
        "evaluations": shown,
        "model_url": safe_url(model),
        "chart": chart,
        "trend": list(run.trend),
        "best_eval_loss": run.best_eval_loss if run.best_eval_loss is not None else _trainer_eval_loss(run),
    }


def _dashboard(runs: Sequence[RunRecord]) -> dict[str, Any] | None:
    """One link for every run of the latest run's Trackio project."""
    tracked = [r.trackio for r in runs if r.trackio is not None]
    if not tracked:
        return None
    latest = tracked[-1]
    names: list[str] = []
    for info in tracked:
        if (info.base_url, info.project) == (latest.base_url, latest.project) and info.run not in names:
            names.append(info.run)
    return {"url": safe_url(urls.trackio_url(latest.base_url, latest.project, names))}


def _group_key(run: RunRecord) -> tuple[str, str]:
    return (run.base_model.name if run.base_model else "", run.dataset.name if run.dataset else "")


def _short_name(link: Link | None) -> str | None:
    """A model's name without its owner or folders (``Qwen2.5-0.5B``), for a heading."""
    if link is None:
        return None
    return link.name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or link.name


def _benchmarks(runs: Sequence[RunRecord]) -> list[str]:
    """The benchmark columns of the summary: scores added to runs, in the order first seen."""
    names: dict[str, None] = {}
    for run in runs:
        for ev in run.shown_evaluations():
            if ev.source is not Source.TRAINER:
                names.setdefault(ev.benchmark)
    return list(names)


def report(
    experiment: str, runs: Sequence[RunRecord], now: float | None = None, charts: Charts | None = None
) -> dict[str, Any]:
    """The template's whole input: plain data, already ordered and grouped.

    ``now`` decides which unfinished runs are stale. By default it is the latest moment recorded
    in the state (a start, an end, a heartbeat), so that rendering is a pure function of the
    state: a run is stale when others have been heard from long after it went quiet.
    """
    moments = [t for r in runs for t in (r.started_at, r.ended_at, r.heartbeat_at) if t is not None]
    latest = max(moments) if moments else None
    now = latest if now is None else now
    best = best_scores(runs)
    charts = charts or Charts()
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    firsts: dict[tuple[str, str], RunRecord] = {}
    latest_of: dict[tuple[str, str], RunRecord] = {}
    shown_runs: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    for run in runs:
        key = _group_key(run)
        if key not in groups:
            groups[key] = {
                "base_model": _link(run.base_model),
                "dataset": _link(run.dataset),
                "model_name": _short_name(run.base_model),
                "dataset_name": run.dataset.name if run.dataset else None,
                "runs": [],
            }
        shown = _run(run, now, best, latest_of.get(key), firsts.get(key), charts.runs.get(run.key))
        shown["first_of_experiment"] = not shown_runs
        firsts.setdefault(key, run)
        latest_of[key] = run
        groups[key]["runs"].append(shown)
        shown_runs.append(shown)
        evaluations.extend({"run": shown, "evaluation": ev} for ev in shown["evaluations"] if ev["in_experiment_table"])
    benchmarks = _benchmarks(runs)
    for shown in shown_runs:
        shown["columns"] = benchmarks[:MAX_SUMMARY_BENCHMARKS]
        shown["experiment_rows"] = sum(ev["in_experiment_table"] for ev in shown["evaluations"])
    return {
        "experiment": experiment,
        "updated": latest,
        "dashboard": _dashboard(runs),
        "chart": charts.overlay,
        "groups": list(groups.values()),
        "runs": shown_runs,  # in start order, across groups
        "evaluations": evaluations,
        "benchmarks": benchmarks[:MAX_SUMMARY_BENCHMARKS],
        "more_benchmarks": max(0, len(benchmarks) - MAX_SUMMARY_BENCHMARKS),
        "in_progress": Status.IN_PROGRESS.value,
    }
