"""Capture: Trainer objects and the environment -> a run record, once, at ``on_train_begin``.

Everything the report says about how a run was set up is read here: names, base model, dataset,
parameters, HF Job, host, Trackio. Detection that fails costs only its own field (the guard
reports it once); names are cleaned of secrets and undecodable bytes before anything is named
after them. Endings are captured here too (an exception -> a :class:`Failure`). Nothing here
writes a file or decides a status: that is :mod:`~trl_reporter.lifecycle`'s job.
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import detect, liveness, naming, params, provenance, urls
from ._guard import Guard
from .destinations import Destination
from .naming import is_safe_key
from .origins import Provenance
from .records import Failure, FailureReason, RunRecord, TrackioOff
from .redact import clean_text
from .schema import is_run_id

if TYPE_CHECKING:
    from transformers import TrainerState, TrainingArguments


@dataclass(frozen=True)
class Settings:
    """What the user chose (arguments beat the environment; both beat detection)."""

    experiment: str | None = None
    report_dir: str | os.PathLike[str] | None = None
    base_model: str | None = None
    dataset: str | None = None
    job_owner: str | None = None
    trackio: bool = True
    template: str | None = None
    destination: Destination | None = None  # where to publish (see publish.py)


@dataclass
class Captured:
    """A run as captured at its start, before it claims its state file."""

    record: RunRecord
    report_dir: Path
    generated_name: bool  # trl-reporter made the name up (``run-<unix seconds>``)
    resuming: bool  # training resumes from a checkpoint (global_step > 0 at the start)
    patch: str | None = None  # the uncommitted changes of the code, redacted (see provenance)
    checkpoint: str | None = None  # resuming: the checkpoint folder's name, where it is known
    checkpoint_saved_at: float | None = None  # ... and when it was saved
    same: tuple[str, str] | None = None  # resuming: (key, run_id) of the run the checkpoint names


def capture_run(
    settings: Settings,
    guard: Guard,
    args: TrainingArguments,
    state: TrainerState,
    model: Any,
    train_dataset: Any,
    *,
    trackio_blocked_by: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Captured:
    """The record of a starting run (its key is left empty: claiming a file decides it)."""
    now = time.time()
    trainer_class = guard.attempt("detecting the trainer class", lambda: detect.trainer_class_name(args), "Trainer")
    base_model = (
        detect.hub_link(settings.base_model, "model", environ)
        if settings.base_model
        else guard.attempt("detecting the base model", lambda: detect.base_model(model, environ), None)
    )
    dataset = (
        detect.hub_link(settings.dataset, "dataset", environ)
        if settings.dataset
        else guard.attempt("detecting the dataset", lambda: detect.dataset(train_dataset, environ), None)
    )
    experiment = clean_text(
        naming.experiment_name(
            settings.experiment,
            project=getattr(args, "project", None),
            output_dir=getattr(args, "output_dir", None),
            model_name=base_model.name if base_model else None,
            trainer_kind=naming.trainer_kind(trainer_class),
            environ=environ,
        )
    )
    # A Trackio run started by report_to="trackio" is linked even when trackio=False, which only
    # stops the callback from starting one itself.
    tracked = detect.trackio_run()
    chosen_name = getattr(args, "run_name", None) or (tracked.run if tracked else None)
    job_id, job_url = detect.hf_job(settings.job_owner, environ)
    record = RunRecord(
        key="",
        run_name=clean_text(str(chosen_name)) if chosen_name is not None else f"run-{int(now)}",
        experiment=experiment,
        started_at=now,
        base_model=_cleaned(base_model),
        dataset=_cleaned(dataset),
        host=detect.host(),
        host_id=detect.host_id(),
        pid=os.getpid(),
        process_started=liveness.process_started(os.getpid()),
        job_id=job_id,
        job_url=job_url,
        trackio=tracked,
        steps_planned=int(getattr(state, "max_steps", 0) or 0) or None,
        model_link=model_link(args, environ),
        run_id=uuid.uuid4().hex,
    )
    record.parameters = guard.attempt(
        "collecting training parameters", lambda: params.curated(args, model, trainer_class), []
    )
    record.changed_arguments = guard.attempt("collecting changed arguments", lambda: params.changed_arguments(args), [])
    device = str(getattr(getattr(args, "device", None), "type", "cpu"))
    report_dir = naming.report_dir(settings.report_dir, environ)
    # What training writes itself is no uncommitted change of the code.
    written = [report_dir, Path(str(getattr(args, "output_dir", None) or report_dir))]
    unknown: tuple[Provenance | None, str | None] = (None, None)
    record.provenance, patch = guard.attempt(
        "reading what produced the run",
        lambda: provenance.capture(device, model, train_dataset, environ, exclude=written),
        unknown,
    )
    if not settings.trackio:
        record.trackio_off = TrackioOff.DISABLED
    elif trackio_blocked_by and tracked is None:
        record.trackio_off, record.trackio_variable = TrackioOff.REMOTE_ENVIRONMENT, trackio_blocked_by
    checkpoint, saved_at = _checkpoint(args, state)
    return Captured(
        record=record,
        report_dir=report_dir,
        generated_name=chosen_name is None,
        resuming=int(getattr(state, "global_step", 0) or 0) > 0,
        checkpoint=checkpoint,
        checkpoint_saved_at=saved_at,
        same=resumed_run(state),
        patch=patch,
    )


def _cleaned(link: Any) -> Any:
    if link is not None:
        link.name = clean_text(link.name)
    return link


def model_link(args: Any, environ: Mapping[str, str] = os.environ) -> str | None:
    """Where the trained model ends up: the Hub repo it is pushed to, else the output directory.

    With ``push_to_hub``, the Trainer itself holds the full repo id it created
    (``Trainer.hub_model_id``, e.g. ``owner/name``); ``args.hub_model_id`` may lack the owner.
    """
    if getattr(args, "push_to_hub", False):
        trainer = detect.find_trainer()
        repo = getattr(trainer, "hub_model_id", None) or getattr(args, "hub_model_id", None)
        if repo and "/" in repo and urls.is_hub_id(repo):
            return urls.hub_url(repo, "model", environ)
        if repo:
            return str(repo)
    output_dir = getattr(args, "output_dir", None)
    return str(output_dir) if output_dir else None


def failure_from_exception(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> Failure:
    """The failure an uncaught exception (or a notebook cell's error) means for the run."""
    interrupted = issubclass(exc_type, KeyboardInterrupt)
    return Failure(
        reason=FailureReason.KEYBOARD_INTERRUPT if interrupted else FailureReason.EXCEPTION,
        exc_type=exc_type.__name__,
        message=clean_text(str(exc)),
        traceback=clean_text("".join(traceback.format_exception(exc_type, exc, tb))),
    )


def signal_failure(name: str) -> Failure:
    """The failure a terminating signal means for the run."""
    return Failure(reason=FailureReason.SIGNAL, signal=name)


def _checkpoint(args: Any, state: Any) -> tuple[str | None, float | None]:
    """The folder a resumed training most likely loaded (``checkpoint-<step>`` in ``output_dir``)
    and when it was saved."""
    step = int(getattr(state, "global_step", 0) or 0)
    output_dir = getattr(args, "output_dir", None)
    if step <= 0 or not output_dir:
        return None, None
    name = f"checkpoint-{step}"
    try:
        return name, (Path(str(output_dir)) / name / "trainer_state.json").stat().st_mtime
    except OSError:
        return None, None


# The entry of TrainerState.stateful_callbacks that names the run a checkpoint belongs to.
# transformers saves that dict in every checkpoint's trainer_state.json and loads it back on
# resume. Not a callback's class name: transformers never rebuilds a callback from it.
CHECKPOINT_ENTRY = "trl_reporter"


def remember_run(state: Any, record: RunRecord) -> None:
    """Name ``record`` in the state every later checkpoint saves (its key and run id only)."""
    saved = getattr(state, "stateful_callbacks", None)
    if isinstance(saved, dict):
        saved[CHECKPOINT_ENTRY] = {"key": record.key, "run_id": record.run_id}


def resumed_run(state: Any) -> tuple[str, str] | None:
    """``(key, run_id)`` of the run the checkpoint being resumed was saved for (see
    :func:`remember_run`). A stranger's file: anything but a safe key and a 32-hex run id is
    ignored, and only a run already in this experiment is ever continued."""
    saved = (getattr(state, "stateful_callbacks", None) or {}).get(CHECKPOINT_ENTRY)
    if isinstance(saved, dict):
        key, run_id = saved.get("key"), saved.get("run_id")
        if isinstance(key, str) and is_safe_key(key) and isinstance(run_id, str) and is_run_id(run_id):
            return key, run_id
    return None
