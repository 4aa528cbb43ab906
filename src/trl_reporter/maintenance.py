"""Maintenance use cases, shared by the ``trl-report`` command and the Python API: mark runs whose
process vanished, bring reports that are behind their state up to date, re-render, add scores.
The lock timeouts of every writer live here too.

The training path reaches this module only through a run's own lifecycle (marking its own
experiment's vanished runs when it starts).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from . import catalog, detect, liveness, naming
from .destinations import chosen_destination
from .errors import StoreError
from .evals import Score, check_link, default_job_link, validate
from .records import Evaluation, Failure, FailureReason, RunRecord, Source, Status
from .store import ExperimentStore, RenderFn
from .template import chosen_template, renderer

logger = logging.getLogger(__name__)

# Bounded waits for an experiment's lock: short while the model trains, longer once it has stopped,
# shortest after a terminating signal (Kubernetes and SLURM give seconds; the run's own state is
# saved first, without any lock), longest for a person or a script running a command.
LOCK_TIMEOUT_TRAINING = 2.0
LOCK_TIMEOUT_FINAL = 5.0
LOCK_TIMEOUT_SIGNAL = 1.0
LOCK_TIMEOUT_COMMAND = 10.0


def reconcile(stores: Iterable[ExperimentStore], render: RenderFn, *, timeout: float) -> list[RunRecord]:
    """Mark every vanished run of this host in ``stores`` as Failure, and re-render its report.

    Returns the runs it changed. Runs of other hosts are left alone (a dead pid here says nothing
    about a process there). A run's file is read again *after* its process is known to be dead,
    so a run that wrote Success just before exiting keeps it. The failure is dated by the run's
    last sign of life (its start, its last heartbeat), not by when it was found.
    """
    host, this_host = detect.host(), detect.host_id()
    changed: list[RunRecord] = []
    for store in stores:
        dead = []
        # Only a run In Progress on this host can have vanished here: its facts tell, cheaply.
        for source in store.sources():
            if source.facts["status"] != Status.IN_PROGRESS.value or source.facts["host"] != host:
                continue
            suspect = store.load_run(source.facts["key"])
            if suspect is None or suspect.status.is_final or not liveness.vanished(suspect, host, this_host):
                continue
            run = store.load_run(suspect.key)  # the process is gone: this read is its last word
            if run is None or run.status.is_final:
                continue
            run.fail(Failure(reason=FailureReason.VANISHED), at=liveness.last_sign_of_life(run))
            store.save_run(run)
            logger.info("trl-reporter: run %r of %r: the process vanished", run.run_name, store.experiment)
            dead.append(run)
        if dead:
            store.render(render, timeout=timeout)
            changed.extend(dead)
    return changed


def catch_up(stores: Iterable[ExperimentStore], render: RenderFn, *, timeout: float) -> list[ExperimentStore]:
    """Re-render each report that is behind its saved state (a render that lost the race for the
    lock, a signal that came too early, a merge, a hand edit). Returns those still behind because
    another writer held the lock."""
    return [store for store in stores if not store.catch_up(render, timeout=timeout)]


def rerender(store: ExperimentStore, render: RenderFn, *, timeout: float) -> None:
    """Re-render a report from all of its saved state, every run read again (a file edited in
    place keeps its folder's time, which the facts cache goes by); :class:`StoreError` if another
    writer holds the lock."""
    if not store.render(render, timeout=timeout, full=True):
        raise StoreError(f"the report of {store.experiment!r} is locked by another writer; try again")


@dataclass(frozen=True)
class ScoresToAdd:
    """Scores checked against an existing run, ready to save: nothing is written until then."""

    store: ExperimentStore
    run: RunRecord
    scores: list[Score]
    job_link: str | None
    model_link: str | None


def check_scores(
    store: ExperimentStore,
    run: str,
    scores: Sequence[Score],
    *,
    job_link: str | None = None,
    model_link: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ScoresToAdd:
    """Check scores, links and the run before anything is written. Without a job link, a score
    added inside an HF Job links to that job. Raises :class:`EvaluationError` or
    :class:`StoreError` (naming the runs that exist)."""
    rows = validate(list(scores))
    job = check_link(job_link, "job link") or default_job_link(environ)
    model = check_link(model_link, "model link")
    return ScoresToAdd(store, catalog.find_run(store, run), rows, job, model)


def save_scores(plan: ScoresToAdd, render: RenderFn, *, source: Source, timeout: float) -> list[Evaluation]:
    """Save checked scores beside their run (one new file: concurrent adds lose nothing), then
    re-render; if the report is locked, the next writer or command brings it up to date."""
    added = [
        Evaluation(
            s.benchmark,
            s.score,
            job_link=plan.job_link,
            model_link=plan.model_link,
            source=source,
            higher_is_better=s.higher_is_better,
        )
        for s in plan.scores
    ]
    plan.store.add_evaluations(plan.run.key, added)
    if not plan.store.render(render, timeout=timeout):
        logger.warning(
            "trl-reporter: the report of %r is locked; the scores are saved and the next writer renders them",
            plan.store.experiment,
        )
    return added


# -- the Python API ------------------------------------------------------------------------------


def add_evaluations(
    experiment: str,
    run: str,
    scores: list[Score],
    *,
    job_link: str | None = None,
    model_link: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    template: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> list[Evaluation]:
    """Add scores to a run of an experiment, then re-render its report.

    ``run`` is the run's key, or its name when no other run has it (a shared name raises
    :class:`StoreError` listing the keys). Raises :class:`StoreError` naming the experiments or
    runs that exist when either is unknown, and :class:`EvaluationError` for a bad score or link;
    nothing is written in either case. With ``$TRL_REPORTER_PUBLISH`` set (inside a Job, say),
    the report is then published there too, waiting at most 30 s (a failure is logged).
    """
    render = renderer(chosen_template(template, environ))
    store = catalog.find_experiment(naming.report_dir(report_dir, environ), experiment)
    plan = check_scores(store, run, scores, job_link=job_link, model_link=model_link, environ=environ)
    added = save_scores(plan, render, source=Source.API, timeout=LOCK_TIMEOUT_COMMAND)
    publish_if_asked(store, render, environ)
    return added


def publish_if_asked(store: ExperimentStore, render: RenderFn, environ: Mapping[str, str] = os.environ) -> None:
    """After scores were added: publish the experiment where ``$TRL_REPORTER_PUBLISH`` says."""
    destination = chosen_destination(None, environ)
    if destination is not None:
        from .publish import publish_once

        publish_once(store, render, destination)


def add_evaluation(
    experiment: str,
    run: str,
    benchmark: str,
    score: float,
    *,
    job_link: str | None = None,
    model_link: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Add one benchmark score to a run (see :func:`add_evaluations`)."""
    [added] = add_evaluations(
        experiment, run, [Score(benchmark, score)], job_link=job_link, model_link=model_link, report_dir=report_dir
    )
    return added
