"""Run records -> the plain data a report template reads.

The view orders and groups runs, decides what is stale and which score is best, and checks every
URL, but writes no word and no markdown: values stay values (seconds, counts, codes, names), and
the template (with the filters of :mod:`~trl_reporter.template`) owns every word a reader sees.
The result holds only dicts, lists, strings, numbers, booleans and ``None``, so a template can
never reach a Python object through it.

It works in two steps, so that a report of a thousand runs re-renders only what changed:
:func:`context` reads every run's small :mod:`~trl_reporter.facts` and lays out the page (order,
groups, best scores, the dashboard), giving each run a *slice* of what the rest of the experiment
means to it (the previous run's parameters, the best scores, the chart); :func:`run_view` then
turns one run's record and its slice into the data of its section.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import liveness, urls
from .chartfiles import Charts
from .codeview import code_change, reproduce
from .facts import best_eval_loss
from .markdown import safe_url
from .metrics import best_scores, in_experiment_table
from .records import Evaluation, RunRecord, Source, Status, is_finite_number, json_safe
from .shapes import parameter

MAX_MESSAGE = 500
# Benchmark columns of the summary table; every score is in the evaluations tables.
MAX_SUMMARY_BENCHMARKS = 6
_TRAINER = Source.TRAINER.value
_IN_PROGRESS = Status.IN_PROGRESS.value


def _number(score: object) -> float | None:
    return float(score) if is_finite_number(score) else None  # type: ignore[arg-type]


def _link(link: dict[str, Any] | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {**link, "url": safe_url(link["url"])}


def _evaluation(ev: Evaluation, model: str | None, best: dict[str, list[Any]]) -> dict[str, Any]:
    value = _number(ev.score)
    top = best.get(ev.benchmark)
    shown = in_experiment_table(ev.benchmark, ev.source.value)
    return {
        "benchmark": ev.benchmark,
        "score": ev.score,
        "best": {"direction": top[1], "source": top[2]} if top and value == top[0] else None,
        "job_url": safe_url(ev.job_link),
        "from_trainer": ev.source is Source.TRAINER,
        "in_experiment_table": shown,
        "model": model,
        "model_url": safe_url(model),
    }


def _trackio(run: RunRecord) -> dict[str, Any] | None:
    info = run.trackio
    if info is None:
        return None
    # A resumed run went through a Trackio run per part: the link shows them all.
    runs = [*[r for r in run.trackio_earlier if r != info.run], info.run]
    return {
        "url": safe_url(urls.trackio_url(info.base_url, info.project, runs)),
        "local": info.local,
        "project": info.project,
        "runs": runs,
    }


def _row_key(code: str, value: Any) -> tuple[str, str]:
    """What identifies a parameter row across runs: its code, or the name of a free-form row."""
    if code == "text" and isinstance(value, list) and value:
        return code, str(value[0])
    return code, ""


def _parameters(run: RunRecord, previous: list[list[Any]] | None) -> list[dict[str, Any]]:
    """The run's parameter rows, each marked with the previous run's value where it differs."""
    before = {_row_key(c, v): v for c, v in previous} if previous is not None else None
    rows = []
    for code, value in run.parameters:
        row = parameter(code, value)
        key = _row_key(code, value)
        row["later"] = [
            {**parameter(code, later), "step": step} for c, later, step in run.parameter_changes if c == code
        ]
        row["changed"] = before is not None and (key not in before or before[key] != json_safe(value))
        row["was"] = parameter(code, before[key]) if row["changed"] and before and key in before else None
        rows.append(row)
    return rows


def _changes(parameters: list[list[Any]], first: list[list[Any]]) -> list[dict[str, Any]]:
    """The parameter rows that differ from the first run of the group (but the model's size)."""
    base = {_row_key(c, v): v for c, v in first}
    return [
        parameter(code, value)
        for code, value in parameters
        if base.get(_row_key(code, value), _MISSING) != value and code != "parameters"
    ]


_MISSING = object()


def run_view(run: RunRecord, part: dict[str, Any]) -> dict[str, Any]:
    """The data of one run's section and rows, from its record and its slice (see :func:`context`)."""
    failure = run.failure
    message = (failure.message or "").strip() if failure else ""
    seen = liveness.last_sign_of_life(run)
    model = run.shown_model_link()
    shown = [_evaluation(ev, model, part["best"]) for ev in run.shown_evaluations()]
    last_moment = run.ended_at if run.ended_at is not None else max(seen, run.started_at)
    first = part["first"]
    return {
        "key": run.key,
        "name": run.run_name,
        "status": run.status.value,
        "started": run.started_at,
        "ended": run.ended_at,
        "elapsed": max(0.0, last_moment - run.started_at - run.paused),  # training time, not the gaps
        "steps_done": run.steps_done,
        "steps_planned": run.steps_planned,
        "parameters": _parameters(run, part["previous"]),
        "first": first is None,
        "first_of_experiment": part["first_of_experiment"],
        "changes": _changes(json_safe(list(run.parameters)), first) if first is not None else [],
        "code_change": code_change(run, part.get("first_code")) if first is not None else None,
        "changed_arguments": [list(p) for p in run.changed_arguments],
        "pid": run.pid,
        "host": run.host,
        "job_id": run.job_id,
        "job_url": safe_url(run.job_url),
        "published_to": list(run.published_to),
        "stale": part["stale"],
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
        "resumed": [
            {
                **{k: v for k, v in vars(r).items() if k not in ("previous_status", "ended")},
                "previous_status": r.previous_status.value,
                "ended": r.ended.value if r.ended else None,
                "logs_url": safe_url(r.logs_url),
            }
            for r in run.resumed
        ],
        "trackio": _trackio(run),
        "trackio_off": run.trackio_off.value if run.trackio_off else None,
        "trackio_variable": run.trackio_variable,
        "evaluations": shown,
        "experiment_rows": sum(ev["in_experiment_table"] for ev in shown),
        "model_url": safe_url(model),
        "chart": part["chart"],
        "reproduce": reproduce(run, part["patch"], part.get("previous_code")),
        "columns": part["columns"],
        "trend": list(run.trend),
        "best_eval_loss": best_eval_loss(run),
        "lowest_eval_loss": part["lowest_eval_loss"],
    }


def _dashboard(facts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One link for every run of the latest run's Trackio project."""
    tracked = [(f["trackio"], f.get("trackio_earlier") or []) for f in facts if f["trackio"] is not None]
    if not tracked:
        return None
    base_url, project, _, local = tracked[-1][0]
    names: dict[str, None] = {}
    for (url, name, run, _), earlier in tracked:
        if url == base_url and name == project:
            names.update(dict.fromkeys([*earlier, run]))  # every part of a resumed run
    return {"url": safe_url(urls.trackio_url(base_url, project, list(names))), "local": local, "project": project}


def _group_key(facts: dict[str, Any]) -> tuple[str, str]:
    model, dataset = facts["base_model"], facts["dataset"]
    return (model["name"] if model else "", dataset["name"] if dataset else "")


def _short_name(link: dict[str, Any] | None) -> str | None:
    """A model's name without its owner or folders (``Qwen2.5-0.5B``), for a heading."""
    if link is None:
        return None
    name: str = link["name"]
    return name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or name


def _benchmarks(facts: Sequence[dict[str, Any]]) -> list[str]:
    """The benchmark columns of the summary: scores added to runs, in the order first seen."""
    names: dict[str, None] = {}
    for run in facts:
        for benchmark, _, _, source in run["scores"]:
            if source != _TRAINER:
                names.setdefault(benchmark)
    return list(names)


def context(
    experiment: str,
    facts: Sequence[dict[str, Any]],
    now: float | None = None,
    charts: Charts | None = None,
    identities: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """The page's data, each run's slice, and what each slice depends on, from the runs' facts
    (in start order).

    The page lists runs by their facts only (key, name, status, times, steps, and how many rows
    they add to the experiment's evaluations table); each run's own data comes from
    :func:`run_view`. A slice's dependency names the runs it was made from by ``identities``
    where given, so that it stays small.

    ``now`` decides which unfinished runs are stale. By default it is the latest moment recorded
    in the state (a start, an end, a heartbeat), so that rendering is a pure function of the
    state: a run is stale when others have been heard from long after it went quiet.
    """
    moments = [t for f in facts for t in (f["started"], f["ended"], f["heartbeat"]) if t is not None]
    latest = max(moments) if moments else None
    now = latest if now is None else now
    best = best_scores(facts)
    charts = charts or Charts()
    benchmarks = _benchmarks(facts)
    columns = benchmarks[:MAX_SUMMARY_BENCHMARKS]
    losses = [f["eval_loss"] for f in facts if f["eval_loss"] is not None]
    lowest = min(losses) if len(losses) >= 2 else None
    # Every run's parts show the summary's columns: a new column is a change for every run.
    shared = repr(columns)
    identities = identities or {}
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    latest_of: dict[tuple[str, str], dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    parts: dict[str, dict[str, Any]] = {}
    depends: dict[str, str] = {}
    for run in facts:
        key = _group_key(run)
        if key not in groups:
            groups[key] = {
                "base_model": _link(run["base_model"]),
                "dataset": _link(run["dataset"]),
                "model_name": _short_name(run["base_model"]),
                "dataset_name": run["dataset"]["name"] if run["dataset"] else None,
                "runs": [],
            }
        previous, first = latest_of.get(key), firsts.get(key)
        final = run["status"] != _IN_PROGRESS
        quiet = None if final else liveness.quiet(final, run["started"], run["heartbeat"], now)
        part = {
            "stale": {"since": quiet[0], "quiet_for": quiet[1]} if quiet else None,
            "best": {b: best[b] for b, *_ in run["scores"] if b in best} if best else {},
            "first_of_experiment": not runs,
            "chart": charts.runs.get(run["key"]),
            "patch": f"{charts.state}/runs/{run['key']}.patch" if charts.state and run.get("patch") else None,
            "columns": columns,
            "lowest_eval_loss": lowest is not None and run["eval_loss"] == lowest,
        }
        # What the slice is made of, named by identities where there are: repr is a fixed order.
        made_of = [(identities.get(f["key"], f["parameters"]), f.get("code")) if f else None for f in (previous, first)]
        depends[run["key"]] = shared + repr(
            (part["stale"], part["best"], not runs, part["chart"], part["patch"], part["lowest_eval_loss"], made_of)
        )
        part["previous"] = previous["parameters"] if previous else None
        part["previous_code"] = previous.get("code") if previous else None
        part["first"] = first["parameters"] if first else None
        part["first_code"] = first.get("code") if first else None
        parts[run["key"]] = part
        firsts.setdefault(key, run)
        latest_of[key] = run
        shown = {
            "key": run["key"],
            "name": run["name"],
            "status": run["status"],
            "started": run["started"],
            "ended": run["ended"],
            "steps_done": run["steps_done"],
            "steps_planned": run["steps_planned"],
            "experiment_rows": run["rows"],
        }
        groups[key]["runs"].append(shown)
        runs.append(shown)
    page = {
        "experiment": experiment,
        "updated": latest,
        "dashboard": _dashboard(facts),
        "chart": charts.overlay,
        "groups": list(groups.values()),
        "runs": runs,  # in start order, across groups
        "benchmarks": columns,
        "more_benchmarks": max(0, len(benchmarks) - MAX_SUMMARY_BENCHMARKS),
        "in_progress": Status.IN_PROGRESS.value,
    }
    return page, parts, depends
