"""What the whole of a report needs to know about each run, kept small.

A report is more than its runs' sections: the order and groups of runs, what changed against the
previous run, the best score of each benchmark, the Trackio dashboard of every run, which runs are
stale. All of it comes from a few fields of each run, its *facts*: a plain JSON-able dict, so that
an experiment of a thousand runs can be re-rendered from facts kept by file identity (see
:mod:`~trl_reporter.snapshot`), reading in full only the runs that changed. Maintenance (marking
vanished runs, counting runs by status) reads the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .metrics import in_experiment_table
from .records import RunRecord, is_finite_number, json_safe

# Bump when the facts' shape changes: facts kept by an older trl-reporter are then recomputed.
VERSION = 6


def _link(link: Any) -> dict[str, Any] | None:
    if link is None:
        return None
    return {"name": link.name, "url": link.url, "guessed": link.guessed, "local_path": link.local_path}


def facts_of(run: RunRecord) -> dict[str, Any]:
    """The facts of a run whose evaluations are all attached."""
    shown = run.shown_evaluations()
    trackio = run.trackio
    facts: dict[str, Any] = json_safe(
        {
            "key": run.key,
            "name": run.run_name,
            "status": run.status.value,
            "started": run.started_at,
            "ended": run.ended_at,
            "heartbeat": run.heartbeat_at,
            "host": run.host,
            "host_id": run.host_id,
            "pid": run.pid,
            "process_started": run.process_started,
            "base_model": _link(run.base_model),
            "dataset": _link(run.dataset),
            "parameters": [[code, value] for code, value in run.parameters],
            "trackio": [trackio.base_url, trackio.project, trackio.run, trackio.local] if trackio else None,
            "scores": [[ev.benchmark, ev.score, ev.higher_is_better, ev.source.value] for ev in shown],
            # How many rows the run adds to the experiment's evaluations table.
            "rows": sum(in_experiment_table(ev.benchmark, ev.source.value) for ev in shown),
            "steps_done": run.steps_done,
            "steps_planned": run.steps_planned,
            "final_loss": run.final_loss,
            "eval_loss": best_eval_loss(run),
            "curves": list(run.curves),
            "patch": bool(run.provenance and run.provenance.code.patch),
            "code": run.provenance.code.label() if run.provenance else None,
            "trackio_earlier": list(run.trackio_earlier),
        }
    )
    return facts


def best_eval_loss(run: RunRecord) -> float | None:
    """The run's lowest eval_loss logged, else the trainer's latest one (a run saved before
    histories were kept); ``None`` when there is no finite one."""
    if run.best_eval_loss is not None:
        return run.best_eval_loss
    for ev in run.evaluations:
        if ev.source.value == "trainer" and ev.benchmark == "eval_loss" and is_finite_number(ev.score):
            return float(ev.score)
    return None


@dataclass(frozen=True)
class RunSource:
    """A run as a render sees it: its facts, what identifies its saved state (``None`` when
    nothing does, as for a record made in memory), and how to read the whole record when its
    section must be rendered again."""

    facts: dict[str, Any]
    identity: str | None
    load: Callable[[], RunRecord]

    @classmethod
    def of(cls, run: RunRecord) -> RunSource:
        return cls(facts_of(run), None, lambda: run)
