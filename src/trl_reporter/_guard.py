"""The one place where the reporter's own failures are swallowed.

Trainer callbacks are not guarded by transformers: an exception raised from a callback kills the
user's training. Every event handler of :class:`~trl_reporter.ReportCallback` therefore runs
through :meth:`Guard.event`, which also makes the rank-0 decision once, and optional enrichment
steps run through :meth:`Guard.attempt`. Each kind of failure is logged as a warning once, then
at debug level, so a full disk does not flood the training log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .redact import scrub_text

logger = logging.getLogger("trl_reporter")

T = TypeVar("T")


class Guard:
    """Swallows and reports the reporter's own exceptions, one warning per kind."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def report(self, what: str, exc: BaseException) -> None:
        # The kind is the failure itself (a full disk, a broken template), wherever it shows up.
        kind = _kind(exc)
        if kind in self.seen:
            logger.debug("trl-reporter: %s failed again: %s", what, scrub_text(repr(exc)))
            return
        self.seen.add(kind)
        logger.warning(
            "trl-reporter: %s failed (%s: %s). Training continues; the report may be incomplete.",
            what,
            type(exc).__name__,
            scrub_text(str(exc)),
        )

    def first_time(self, exc: BaseException) -> bool:
        """Whether no warning was given yet for this kind of failure (it counts as given now)."""
        kind = _kind(exc)
        new = kind not in self.seen
        self.seen.add(kind)
        return new

    def attempt(self, what: str, fn: Callable[[], T], default: T) -> T:
        """Run ``fn``; on failure report it and return ``default``."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the whole point of the guard
            self.report(what, exc)
            return default


def _kind(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__qualname__}:{errno}" if errno is not None else type(exc).__qualname__


F = TypeVar("F", bound=Callable[..., None])


def event(fn: F) -> F:
    """Decorate a callback event: rank 0 only, never raises, always returns ``None``.

    The decorated method's object keeps its :class:`Guard` in ``self._guard``.
    """

    @functools.wraps(fn)
    def wrapper(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not getattr(state, "is_world_process_zero", True):
            return None
        try:
            fn(self, args, state, control, **kwargs)
        except Exception as exc:  # noqa: BLE001 - see module docstring
            self._guard.report(fn.__name__, exc)
        return None

    return wrapper  # type: ignore[return-value]
