"""Run records -> the plain data a report template reads.

The view orders and groups runs, decides what is stale and which score is best, and checks every
URL, but writes no word and no markdown: values stay values (seconds, counts, codes, names), and
the template (with the filters of :mod:`~trl_reporter.template`) owns every word a reader sees.
The result holds only dicts, lists, strings, numbers, booleans and ``None``, so a template can
never reach a Python object through it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from . import liveness, urls
from .markdown import safe_url
from .records import MAX_INT, Evaluation, Link, RunRecord, Source, Status, is_finite_number

MAX_MESSAGE = 500
_LOWER_IS_BETTER_RE = re.compile(r"loss|perplexity|ppl|error|\b(?:c|w|t)er\b|mse|mae|rmse|bits_per_byte|bpb", re.I)


def lower_is_better(ev: Evaluation) -> bool:
    """The direction of a benchmark: as given, else lower for losses, perplexities and errors."""
    if ev.higher_is_better is not None:
        return not ev.higher_is_better
    return bool(_LOWER_IS_BETTER_RE.search(ev.benchmark))


def _number(score: float | str) -> float | None:
    return float(score) if is_finite_number(score) else None


def best_scores(runs: Sequence[RunRecord]) -> dict[str, float]:
    """The best score of every benchmark that at least two evaluations in the experiment share."""
    by_benchmark: dict[str, list[tuple[float, Evaluation]]] = {}
    for run in runs:
        for ev in run.evaluations:
            value = _number(ev.score)
            if value is not None:
                by_benchmark.setdefault(ev.benchmark, []).append((value, ev))
    best = {}
    for name, scored in by_benchmark.items():
        if len(scored) >= 2:
            pick = min if lower_is_better(scored[0][1]) else max
            best[name] = pick(value for value, _ in scored)
    return best


# The shape each curated parameter code must have for the template to word it; a row that does not
# fit (an older or a hand-edited state file) is shown as its code and its value, never an error.
_SCALAR = (str, int, float, bool, type(None))
_SHAPES: dict[str, Any] = {
    "trainer": {"class": str, "versions": [[str, str]]},
    "effective_batch_size": {"per_device": int, "accumulation": int, "devices": int},
    "scheduler": {"type": _SCALAR, "warmup_ratio?": _SCALAR, "warmup_steps?": _SCALAR},
    "precision": {"kind": str, "tf32": bool},
    "lora": {"type": _SCALAR, "r?": _SCALAR, "alpha?": _SCALAR, "dropout?": _SCALAR, "targets?": (str, [str])},
    "parameters": {"total": int, "trainable": int},
    "devices": {"count": int, "kind": str},
    "text": [str],
    **dict.fromkeys(
        (
            "learning_rate",
            "batch_size",
            "gradient_accumulation",
            "max_steps",
            "epochs",
            "optimizer",
            "weight_decay",
            "max_grad_norm",
            "seed",
            "max_length",
            "packing",
            "gradient_checkpointing",
        ),
        _SCALAR,
    ),
}


def _fits(value: Any, shape: Any) -> bool:
    """Whether ``value`` has ``shape``: a dict of keys (``"name?"`` for optional ones), a list of
    one shape, a tuple of alternatives, or a type; integers must fit 64 bits."""
    if isinstance(shape, dict):
        return (
            isinstance(value, dict)
            and all(k in shape or f"{k}?" in shape for k in value)
            and all(
                _fits(value[k.rstrip("?")], s) if k.rstrip("?") in value else k.endswith("?") for k, s in shape.items()
            )
        )
    if isinstance(shape, list):
        return isinstance(value, list) and all(_fits(v, shape[0]) for v in value)
    if isinstance(shape, tuple) and any(isinstance(s, (list, dict)) for s in shape):
        return any(_fits(value, s) for s in shape)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return False
    return isinstance(value, shape) and not (shape is int and isinstance(value, bool))


def _consistent(code: str, value: Any) -> bool:
    """What the template unpacks as (name, value) has two items, and a percentage has a base."""
    if code == "text":
        return len(value) == 2
    if code == "trainer":
        return all(len(pair) == 2 for pair in value["versions"])
    if code == "parameters":
        return bool(value["total"] > 0 and value["trainable"] >= 0)
    return True


def _parameter(code: str, value: Any) -> dict[str, Any]:
    """A parameter row for the template: its code and value, plus what the words need computed."""
    if code not in _SHAPES or not _fits(value, _SHAPES[code]) or not _consistent(code, value):
        return {"code": "other", "label": code, "value": value}
    row: dict[str, Any] = {"code": code, "value": value}
    if code == "effective_batch_size":
        row["total"] = value["per_device"] * value["accumulation"] * value["devices"]
    if code == "parameters":
        row["percent"] = 100 * value["trainable"] / value["total"]
    return row


def _link(link: Link | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {"name": link.name, "url": safe_url(link.url), "guessed": link.guessed, "local_path": link.local_path}


def _evaluation(run: RunRecord, ev: Evaluation, best: dict[str, float]) -> dict[str, Any]:
    model = ev.model_link or run.model_link
    value = _number(ev.score)
    return {
        "benchmark": ev.benchmark,
        "score": ev.score,
        "best": ev.benchmark in best and value == best[ev.benchmark],
        "job_url": safe_url(ev.job_link),
        "from_trainer": ev.source is Source.TRAINER,
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


def _run(run: RunRecord, now: float | None, best: dict[str, float]) -> dict[str, Any]:
    failure = run.failure
    message = (failure.message or "").strip() if failure else ""
    seen = liveness.last_sign_of_life(run)
    stale = now is not None and liveness.stale(run, now)
    return {
        "key": run.key,
        "name": run.run_name,
        "status": run.status.value,
        "started": run.started_at,
        "ended": run.ended_at,
        "elapsed": (run.ended_at or run.started_at) - run.started_at,
        "steps_done": run.steps_done,
        "steps_planned": run.steps_planned,
        "parameters": [_parameter(code, value) for code, value in run.parameters],
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
        "evaluations": [_evaluation(run, ev, best) for ev in run.evaluations],
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


def report(experiment: str, runs: Sequence[RunRecord], now: float | None = None) -> dict[str, Any]:
    """The template's whole input: plain data, already ordered and grouped.

    ``now`` decides which unfinished runs are stale. By default it is the latest moment recorded
    in the state (a start, an end, a heartbeat), so that rendering is a pure function of the
    state: a run is stale when others have been heard from long after it went quiet.
    """
    moments = [t for r in runs for t in (r.started_at, r.ended_at, r.heartbeat_at) if t is not None]
    latest = max(moments) if moments else None
    now = latest if now is None else now
    best = best_scores(runs)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    shown_runs: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    for run in runs:
        key = _group_key(run)
        if key not in groups:
            groups[key] = {"base_model": _link(run.base_model), "dataset": _link(run.dataset), "runs": []}
        shown = _run(run, now, best)
        groups[key]["runs"].append(shown)
        shown_runs.append(shown)
        evaluations.extend({"run": shown, "evaluation": ev} for ev in shown["evaluations"])
    return {
        "experiment": experiment,
        "updated": latest,
        "dashboard": _dashboard(runs),
        "groups": list(groups.values()),
        "runs": shown_runs,  # in start order, across groups
        "evaluations": evaluations,
        "in_progress": Status.IN_PROGRESS.value,
    }
