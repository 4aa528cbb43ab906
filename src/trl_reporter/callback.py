"""``ReportCallback``: the Trainer-facing translator.

Each event handler hands one fact to the :class:`~trl_reporter.session.RunSession` and decides
nothing itself. Every handler runs through :func:`trl_reporter._guard.event`, which keeps the
reporter's own failures out of the training loop and lets only world rank 0 act.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from . import detect
from ._guard import Guard, event
from .render import chosen_template, renderer
from .session import RunSession, Settings


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
    ) -> None:
        self.settings = Settings(
            experiment=experiment,
            report_dir=report_dir,
            base_model=base_model,
            dataset=dataset,
            job_owner=job_owner,
            trackio=trackio,
            template=chosen_template(template),
        )
        # A bad template path is the user's mistake, made before training: say so now.
        self._render = renderer(self.settings.template)
        self._guard = Guard()
        self.session: RunSession | None = None
        self._trackio_callback: Any = None
        # The environment variable that kept the reporter from starting Trackio itself, if any.
        self._trackio_blocked_by: str | None = None

    # -- Trackio, delegated to transformers' own integration, kept local --------------------------

    def _trackio(self, args: Any) -> Any:
        """A local-only TrackioCallback, when Trackio is wanted and ``report_to`` lacks it.

        The user did not choose Trackio here, so nothing may leave the machine: if the
        environment would send trackio.init() to a Space or a server, it is not started at all.
        """
        if self._trackio_callback is None and self.settings.trackio and "trackio" not in (args.report_to or []):
            self._trackio_blocked_by = detect.trackio_remote_variable()
            if self._trackio_blocked_by is None:
                self._trackio_callback = _local_trackio_callback()
        return self._trackio_callback

    def _delegate(self, name: str, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        callback = self._trackio(args) if name == "on_train_begin" else self._trackio_callback
        if callback is not None:
            self._guard.attempt(f"Trackio {name}", lambda: getattr(callback, name)(args, state, control, **kwargs), None)

    # -- events --------------------------------------------------------------------------------

    @event
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._delegate("on_train_begin", args, state, control, **kwargs)
        if self.session is not None and not self.session.record.status.is_final:
            if getattr(args, "auto_find_batch_size", False):
                self.session.state = state  # the same run, retried with a smaller batch
                return
            self.session.superseded()
        loader = kwargs.get("train_dataloader")
        self.session = RunSession.begin(
            self.settings,
            self._render,
            self._guard,
            args,
            state,
            kwargs.get("model"),
            getattr(loader, "dataset", None),
            trackio_blocked_by=self._trackio_blocked_by,
        )

    @event
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.heartbeat()

    @event
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._delegate("on_log", args, state, control, logs=logs, **kwargs)
        if self.session is not None:
            self.session.log(logs or {})
            self.session.look_for_trackio()

    @event
    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.session is not None and metrics:
            self.session.evaluate(metrics, int(state.global_step))

    @event
    def on_predict(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._delegate("on_predict", args, state, control, metrics=metrics, **kwargs)

    @event
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.end(state, args)
        self._delegate("on_train_end", args, state, control, **kwargs)


class _WithoutRemoteTrackio:
    """Training arguments as transformers' TrackioCallback reads them, minus every remote target."""

    def __init__(self, args: Any) -> None:
        self._args = args

    def __getattr__(self, name: str) -> Any:
        if name in ("trackio_space_id", "trackio_bucket_id"):
            return None
        return getattr(self._args, name)


def _local_trackio_callback() -> Any:
    """transformers' TrackioCallback, kept on this machine.

    It logs exactly as transformers does, but ``trackio.init`` gets no Space or bucket, a push
    never syncs (``on_push_begin`` would create a public static Space), and without a Space the
    end of training neither freezes one nor tags the model card.
    """
    from transformers.integrations import TrackioCallback

    class LocalTrackioCallback(TrackioCallback):  # type: ignore[misc]
        def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
            super().setup(_WithoutRemoteTrackio(args), state, model, **kwargs)
            self._space_id = self._static_space_id = None

        def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            return None

    return LocalTrackioCallback()
