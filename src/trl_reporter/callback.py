"""``ReportCallback``: the Trainer-facing translator.

Each event handler hands one fact to the run's :class:`~trl_reporter.lifecycle.RunSession` and
decides nothing itself. Every handler runs through :func:`trl_reporter._guard.event`, which keeps
the reporter's own failures out of the training loop and lets only world rank 0 act.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from ._guard import Guard, event
from .capture import Settings, remember_run
from .destinations import chosen_destination
from .lifecycle import RunSession
from .template import chosen_template, renderer
from .trackio_local import local_trackio_callback

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments


class ReportCallback(TrainerCallback):
    """Keeps ``training_reports/<experiment>.md`` up to date while a Trainer trains.

    Works with no arguments, as an instance or as the class itself. Every argument is optional:

    Args:
        experiment: the report's name (``$TRL_REPORTER_EXPERIMENT``); by default a non-default
            ``args.project``, else the ``output_dir`` basename, else ``<model>-<trainer kind>``.
        report_dir: where reports go (``$TRL_REPORTER_DIR``); by default
            ``<project root>/training_reports``.
        base_model: the base model's Hub id, when detection from the model is not right.
        dataset: the dataset's Hub id; otherwise it is guessed from the datasets cache.
        job_owner: the namespace of the HF Jobs logs URL (``$TRL_REPORTER_JOB_OWNER``).
        template: path to a jinja2 template to render the report with instead of the default
            (``$TRL_REPORTER_TEMPLATE``). It renders in jinja2's sandbox, and is never remembered
            in the saved state: other writers use their own argument or environment.
        trackio: start local Trackio logging when ``report_to`` does not include it (default on).
            Trackio started this way stays on this machine: no Space, no sync on push, no model
            card change. Only ``report_to="trackio"`` uploads, as transformers does.
        publish: where else to keep the report (``$TRL_REPORTER_PUBLISH``): a directory (a
            mounted bucket volume, say) or a Hub repo, ``hf://datasets/<namespace>/<name>[/<path>]``
            or ``hf://<namespace>/<name>[/<path>]``. Published on a background thread; see the
            README's "Training on Hugging Face Jobs".

    Raises:
        TemplateError: at construction, for a template that is missing or does not parse.
        DestinationError: at construction, for a ``publish`` destination that cannot be one.
    """

    def __init__(
        self,
        experiment: str | None = None,
        *,
        report_dir: str | os.PathLike[str] | None = None,
        base_model: str | None = None,
        dataset: str | None = None,
        job_owner: str | None = None,
        template: str | os.PathLike[str] | None = None,
        trackio: bool = True,
        publish: str | os.PathLike[str] | None = None,
    ) -> None:
        self.settings = Settings(
            experiment=experiment,
            report_dir=report_dir,
            base_model=base_model,
            dataset=dataset,
            job_owner=job_owner,
            trackio=trackio,
            template=chosen_template(template),
            destination=chosen_destination(publish),
        )
        # A bad template path is the user's mistake, made before training: say so now.
        self._render = renderer(self.settings.template)
        self._guard = Guard()
        self.session: RunSession | None = None
        self._trackio_callback: Any = None
        self._trackio_blocked_by: str | None = None

    @property
    def report_path(self) -> Path | None:
        """The markdown report of the current (or last) run, once training has begun."""
        return self.session.store.report_path if self.session is not None else None

    # -- Trackio, delegated to transformers' own integration, kept local --------------------------

    def _delegate(
        self, name: str, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        wanted = self.settings.trackio and "trackio" not in (args.report_to or [])
        if name == "on_train_begin" and wanted and self._trackio_callback is None:
            self._trackio_callback, self._trackio_blocked_by = local_trackio_callback()
        callback = self._trackio_callback
        if callback is not None:
            self._guard.attempt(
                f"Trackio {name}", lambda: getattr(callback, name)(args, state, control, **kwargs), None
            )

    # -- events --------------------------------------------------------------------------------

    @event
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._delegate("on_train_begin", args, state, control, **kwargs)
        loader = kwargs.get("train_dataloader")
        self.session = RunSession.start(
            self.session,
            self.settings,
            self._render,
            self._guard,
            args,
            state,
            kwargs.get("model"),
            getattr(loader, "dataset", None),
            trackio_blocked_by=self._trackio_blocked_by,
        )
        remember_run(state, self.session.record)  # in every checkpoint: a resume continues this run

    @event
    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.heartbeat()

    @event
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._delegate("on_log", args, state, control, logs=logs, **kwargs)
        if self.session is not None:
            self.session.log(logs or {})
            self.session.look_for_trackio()

    @event
    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.session is not None and metrics:
            self.session.evaluate(metrics, int(state.global_step))

    @event
    def on_predict(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._delegate("on_predict", args, state, control, metrics=metrics, **kwargs)

    @event
    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.session is not None:
            self.session.end(state, args)
        self._delegate("on_train_end", args, state, control, **kwargs)
