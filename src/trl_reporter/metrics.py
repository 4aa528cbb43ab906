"""Which way is better for a metric, how sure that is, and so which score is the best.

A direction is known only from the tool that produced the score (lm-evaluation-harness's
``higher_is_better``) or from a name that says it: losses, perplexities and error rates are
lower-better; accuracy, F1, exact match and their like higher-better. Anything else (an entropy, a
reward margin, a length) has no better direction, and no score of it is called the best.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from .records import Source

_TRAINER = Source.TRAINER.value

LOWER = "lower"
HIGHER = "higher"

# Words and phrases, matched whole between separators: "eval_loss", "hellaswag/acc_norm (5-shot)".
_LOWER_WORDS = (
    "loss",
    "nll",
    "perplexity",
    "ppl",
    "error",
    "err",
    "cer",
    "wer",
    "ter",
    "mse",
    "mae",
    "rmse",
    "bpb",
    "bits_per_byte",
    "byte_perplexity",
    "word_perplexity",
)
_HIGHER_WORDS = (
    "acc",
    "accuracy",
    "f1",
    "exact_match",
    "em",
    "quasi_exact_match",
    "bleu",
    "rouge",
    "rouge1",
    "rouge2",
    "rougel",
    "chrf",
    "mcc",
    "pass@1",
    "pass_at_1",
    "precision",
    "recall",
    "auc",
    "auroc",
    "win_rate",
    "mean_token_accuracy",
)
_SEPARATORS_RE = re.compile(r"[^a-z0-9@]+")


def _words(name: str) -> str:
    return f"_{_SEPARATORS_RE.sub('_', name.lower()).strip('_')}_"


def direction(name: str, higher_is_better: bool | None = None) -> tuple[str | None, str | None]:
    """``(direction, where it came from)``: ``("higher", "results file")``, ``("lower", "name")``,
    or ``(None, None)`` when no direction is known."""
    if higher_is_better is not None:
        return (HIGHER if higher_is_better else LOWER), "results file"
    words = _words(name)
    if any(f"_{w}_" in words for w in _LOWER_WORDS):
        return LOWER, "name"
    if any(f"_{w}_" in words for w in _HIGHER_WORDS):
        return HIGHER, "name"
    return None, None


def in_experiment_table(benchmark: str, source: str) -> bool:
    """Benchmark scores, and of the trainer's own metrics its eval_loss: the rest (token accuracy,
    entropy, ...) stays in the run's section."""
    return source != _TRAINER or benchmark == "eval_loss"


def best_scores(facts: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """``benchmark -> [best score, direction, where the direction came from]`` for every benchmark
    or trainer metric that at least two runs share and whose better direction is known."""
    by_benchmark: dict[str, list[tuple[float, bool | None]]] = {}
    for run in facts:
        for benchmark, score, higher_is_better, _ in run["scores"]:
            if type(score) in (int, float) and math.isfinite(score):  # is_finite_number, inlined
                by_benchmark.setdefault(benchmark, []).append((score, higher_is_better))
    best = {}
    for name, scored in by_benchmark.items():
        given = next((h for _, h in scored if h is not None), None)
        way, source = direction(name, given)
        if len(scored) >= 2 and way is not None and source is not None:
            pick = min if way == LOWER else max
            best[name] = [pick(value for value, _ in scored), way, source]
    return best
