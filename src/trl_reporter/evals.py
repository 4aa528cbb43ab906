"""Scores from outside the training: checking them, and reading lm-evaluation-harness and
lighteval results files.

Adding them to a run is a use case of :mod:`~trl_reporter.maintenance` (``add_evaluation`` in
the Python API, ``trl-report add-eval`` and ``import-eval``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import detect
from .errors import EvaluationError
from .markdown import safe_url
from .records import Source, is_finite_number


@dataclass(frozen=True)
class Score:
    """One row to add: a benchmark name and its score, and which way is better."""

    benchmark: str
    score: float
    higher_is_better: bool | None = None


def parse_score(value: object) -> float:
    """A finite number, from a number or its text; anything else is an :class:`EvaluationError`."""
    if isinstance(value, bool):
        raise EvaluationError(f"score {value!r} is not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EvaluationError(f"score {value!r} is not a number") from None
    if not is_finite_number(number):
        raise EvaluationError(f"score {value!r} is not a finite number")
    return number


def check_link(url: str | None, what: str) -> str | None:
    """``None``, or an http(s) URL with a host; anything else is an :class:`EvaluationError`."""
    if url is None:
        return None
    if safe_url(url) is None:
        raise EvaluationError(f"{what} {url!r} is not an http(s) URL with a host")
    return url


def default_job_link(environ: Mapping[str, str] = os.environ, owner: str | None = None) -> str | None:
    """Inside an HF Job, that job's logs URL (the evaluation job that is adding the score)."""
    return detect.hf_job(owner, environ)[1]


def validate(scores: list[Score]) -> list[Score]:
    """Scores with numbers checked and names trimmed; raises :class:`EvaluationError`."""
    if not scores:
        raise EvaluationError("there are no scores to add")
    rows = [Score(str(s.benchmark).strip(), parse_score(s.score), s.higher_is_better) for s in scores]
    if any(not r.benchmark for r in rows):
        raise EvaluationError("a benchmark name is empty")
    return rows


# -- results files ------------------------------------------------------------------------------


def read_results(path: str | os.PathLike[str]) -> tuple[Source, list[Score]]:
    """Read an lm-evaluation-harness or lighteval results JSON: ``(tool, scores)``."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise EvaluationError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EvaluationError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise EvaluationError(f"{os.fspath(path)!r} is nested too deeply to be a results file") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise EvaluationError(
            f'{os.fspath(path)!r} is not an lm-evaluation-harness or lighteval results file (no "results" object)'
        )
    if isinstance(data.get("config_general"), dict):
        tool, scores = Source.LIGHTEVAL, _lighteval(data)
    elif any(k in data for k in ("higher_is_better", "n-shot", "configs", "versions", "config", "group_subtasks")):
        tool, scores = Source.LM_EVAL, _lm_eval(data)
    else:
        raise EvaluationError(
            f'{os.fspath(path)!r} has "results" but neither lighteval\'s "config_general" nor '
            'lm-evaluation-harness\'s "versions"/"n-shot"/"higher_is_better": unrecognised format'
        )
    if not scores:
        raise EvaluationError(f"{os.fspath(path)!r} ({tool.value}) holds no numeric scores")
    return tool, scores


def _number(value: Any) -> float | None:
    """A finite score, ``None`` for what is not a number; a number no float can hold (a
    400-digit integer) is an :class:`EvaluationError`, not a silent infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        digits = len(str(abs(int(value)))) if abs(int(value)).bit_length() < 14000 else "thousands of"
        raise EvaluationError(f"a score of {digits} digits is too large to be a number") from None
    return number if is_finite_number(number) else None


_LM_EVAL_SKIP = {"alias", "name", "sample_len", "sample_count", "samples"}


def _lm_eval(data: Mapping[str, Any]) -> list[Score]:
    """``results: {task: {"acc,none": 0.5, "acc_stderr,none": 0.01, ...}}`` -> task/metric rows."""
    n_shot: Mapping[str, Any] = data["n-shot"] if isinstance(data.get("n-shot"), dict) else {}
    better: Mapping[str, Any] = data["higher_is_better"] if isinstance(data.get("higher_is_better"), dict) else {}
    scores = []
    for task, metrics in data["results"].items():
        if not isinstance(metrics, dict):
            continue
        for key, value in metrics.items():
            metric, _, filter_name = str(key).partition(",")
            number = _number(value)
            if number is None or metric in _LM_EVAL_SKIP or metric.endswith("_stderr"):
                continue
            notes = [filter_name] if filter_name and filter_name != "none" else []
            shots = n_shot.get(task)
            if isinstance(shots, int) and not isinstance(shots, bool):
                notes.append(f"{shots}-shot")
            suffix = f" ({', '.join(notes)})" if notes else ""
            direction = better.get(task, {}).get(metric) if isinstance(better.get(task), dict) else None
            scores.append(Score(f"{task}/{metric}{suffix}", number, direction if isinstance(direction, bool) else None))
    return scores


_LIGHTEVAL_TASK_RE = re.compile(r"^(?:(?P<suite>[^|]+)\|)?(?P<task>[^|]+)\|(?P<shots>\d+)$")


def _lighteval(data: Mapping[str, Any]) -> list[Score]:
    """``results: {"lighteval|gsm8k|5": {"em": 0.4, "em_stderr": 0.02}, "all": {...}}`` -> rows."""
    results = data["results"]
    tasks = [k for k in results if k != "all"] or list(results)
    scores = []
    for key in tasks:
        metrics = results[key]
        if not isinstance(metrics, dict):
            continue
        match = _LIGHTEVAL_TASK_RE.match(str(key))
        task, suffix = (match["task"], f" ({match['shots']}-shot)") if match else (str(key), "")
        for metric, value in metrics.items():
            number = _number(value)
            if number is None or str(metric).endswith("_stderr"):
                continue
            scores.append(Score(f"{task}/{metric}{suffix}", number))
    return scores
