"""Trackio that trl-reporter starts itself, kept on this machine.

When ``report_to`` lacks ``"trackio"``, the user did not choose Trackio, so nothing it logs may
leave the machine. transformers' own ``TrackioCallback`` is reused for the logging, minus every
remote target: ``trackio.init`` gets no Space or bucket, a push never syncs (``on_push_begin``
would create a static Space, public unless the org defaults to private), and without a Space the
end of training neither freezes one nor tags the model card. If the environment would send
``trackio.init`` elsewhere anyway (``TRACKIO_SPACE_ID`` and friends), Trackio is not started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .detect import trackio_remote_variable


class _WithoutRemoteTrackio:
    """Training arguments as ``TrackioCallback`` reads them, minus every remote target."""

    def __init__(self, args: Any) -> None:
        self._args = args

    def __getattr__(self, name: str) -> Any:
        if name in ("trackio_space_id", "trackio_bucket_id"):
            return None
        return getattr(self._args, name)


def local_trackio_callback(environ: Mapping[str, str] = os.environ) -> tuple[Any, str | None]:
    """``(callback, None)``, or ``(None, variable)`` when ``variable`` would make Trackio upload."""
    blocked_by = trackio_remote_variable(environ)
    if blocked_by is not None:
        return None, blocked_by
    from transformers.integrations.integration_utils import TrackioCallback

    class LocalTrackioCallback(TrackioCallback):
        def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
            with _no_username_lookup():
                super().setup(_WithoutRemoteTrackio(args), state, model, **kwargs)  # type: ignore[no-untyped-call]
            self._space_id = self._static_space_id = None

        def on_push_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            return None

    return LocalTrackioCallback(), None  # type: ignore[no-untyped-call]


@contextmanager
def _no_username_lookup() -> Iterator[None]:
    """A local Trackio run labels itself with the Hub user name, asking ``whoami()`` on the training
    thread, with no timeout, whenever a token is set: with a hanging network, training would hang
    at its start. A run kept on this machine needs no Hub name, so it is not asked for."""
    try:
        from trackio.run import Run
    except ImportError:
        yield
        return
    original = Run.__dict__.get("_get_username")
    if original is None:
        yield
        return
    Run._get_username = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Run._get_username = original  # type: ignore[method-assign]
