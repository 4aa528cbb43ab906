"""Process-level hooks that see a run end without ``on_train_end``.

``Trainer.train`` has no ``try``/``finally`` and transformers has no exception event, so a run
that dies is only visible from outside the training loop: ``sys.excepthook`` (and
``threading.excepthook``) for an uncaught exception, and ``atexit`` for a process that ends
without finishing training. Hooks chain to whatever was installed before, never raise, and are
removed when the run ends.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

ExceptionHandler = Callable[[type[BaseException], BaseException, TracebackType | None], None]


class ProcessHooks:
    """Chained excepthooks and an atexit handler for one active run."""

    def __init__(self, on_exception: ExceptionHandler, on_exit: Callable[[], None]) -> None:
        self._on_exception = on_exception
        self._on_exit = on_exit
        self._prev_excepthook: Any = None
        self._prev_thread_hook: Any = None
        self.installed = False
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        if self.installed:
            return
        # Only the training thread's death is this run's failure; other threads may die harmlessly.
        self._thread = threading.current_thread()
        self._prev_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        self._prev_thread_hook = threading.excepthook
        threading.excepthook = self._thread_excepthook
        atexit.register(self._atexit)
        self.installed = True

    def uninstall(self) -> None:
        if not self.installed:
            return
        # Only restore what is still ours: someone who replaced our hook keeps theirs.
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_excepthook
        if threading.excepthook == self._thread_excepthook:
            threading.excepthook = self._prev_thread_hook
        atexit.unregister(self._atexit)
        self.installed = False

    def _safely(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a hook must never mask the user's own error
            logger.warning("trl-reporter: could not record how the run ended", exc_info=True)

    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if self._thread is threading.main_thread():
            self._safely(lambda: self._on_exception(exc_type, exc, tb))
        (self._prev_excepthook or sys.__excepthook__)(exc_type, exc, tb)

    def _thread_excepthook(self, hook_args: Any) -> None:
        if hook_args.thread is self._thread and hook_args.exc_value is not None:
            self._safely(lambda: self._on_exception(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback))
        (self._prev_thread_hook or threading.__excepthook__)(hook_args)

    def _atexit(self) -> None:
        self._safely(self._on_exit)
