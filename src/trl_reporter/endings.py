"""Process-level hooks that see a run end without ``on_train_end``.

``Trainer.train`` has no ``try``/``finally`` and transformers has no exception event, so a run
that dies is only visible from outside the training loop:

- ``sys.excepthook`` (and ``threading.excepthook``): an uncaught exception in a script;
- ``atexit``: the process ends without finishing training (``sys.exit(0)``, a caught exception);
- SIGTERM and SIGINT handlers: a job cancelled, a node preempted, torchrun stopping a rank;
- IPython's ``post_run_cell``: a notebook cell that raised or ended mid-training
  (``sys.excepthook`` never fires inside IPython or Jupyter).

Every hook chains to what was there before, never raises, and is removed when the run ends
(only where it is still ours: someone who replaced it keeps theirs).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .records import FailureReason

logger = logging.getLogger(__name__)

ExceptionHandler = Callable[[type[BaseException], BaseException, TracebackType | None], None]
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ProcessHooks:
    """The hooks of one active run.

    Args:
        on_exception: an uncaught exception ended the training thread (or a notebook cell).
        on_exit: the process is exiting, or a notebook cell ended, and training had not finished.
        on_signal: a terminating signal arrived; called before the previous handler runs, so
            the failure is on disk before the process can die.
        on_signal_survived: the program's own handler for that signal returned, so training
            goes on.
    """

    def __init__(
        self,
        on_exception: ExceptionHandler,
        on_exit: Callable[[FailureReason], None],
        on_signal: Callable[[str], None],
        on_signal_survived: Callable[[str], None],
    ) -> None:
        self._on_exception = on_exception
        self._on_exit = on_exit
        self._on_signal = on_signal
        self._on_signal_survived = on_signal_survived
        self._pid = os.getpid()
        self._prev_excepthook: Any = None
        self._prev_thread_hook: Any = None
        self._prev_signals: dict[int, Any] = {}
        self._shell: Any = None
        self._thread: threading.Thread | None = None
        self.installed = False

    # -- install / uninstall ---------------------------------------------------------------------

    def install(self) -> None:
        if self.installed:
            return
        # Only the training thread's death is this run's failure; other threads may die harmlessly.
        self._thread = threading.current_thread()
        # Forked children (DataLoader workers) inherit the hooks but are not the run.
        self._pid = os.getpid()
        self._prev_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        self._prev_thread_hook = threading.excepthook
        threading.excepthook = self._thread_excepthook
        atexit.register(self._atexit)
        # signal.signal() only works from the main thread; a Trainer run in a thread gets none.
        if self._thread is threading.main_thread():
            for signum in _SIGNALS:
                if signum in self._prev_signals:
                    continue  # still chained to us by whoever replaced our handler
                self._prev_signals[signum] = signal.getsignal(signum)
                signal.signal(signum, self._signal_handler)
        self._install_ipython()
        self.installed = True

    def _install_ipython(self) -> None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
        if shell is not None and self._thread is threading.main_thread():
            shell.events.register("post_run_cell", self._post_run_cell)
            self._shell = shell

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_excepthook
        if threading.excepthook == self._thread_excepthook:
            threading.excepthook = self._prev_thread_hook
        atexit.unregister(self._atexit)
        if threading.current_thread() is threading.main_thread():
            for signum, previous in list(self._prev_signals.items()):
                if signal.getsignal(signum) == self._signal_handler:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
                    del self._prev_signals[signum]
                # else: someone chained over us and may still call us; we keep what to pass on to.
        if self._shell is not None:
            try:
                self._shell.events.unregister("post_run_cell", self._post_run_cell)
            except ValueError:
                pass
            self._shell = None

    # -- the hooks -------------------------------------------------------------------------------

    def _ours(self) -> bool:
        return self.installed and os.getpid() == self._pid

    def _safely(self, fn: Callable[[], None]) -> None:
        """Record an ending: never raise, and hold off SIGINT/SIGTERM meanwhile, so that a second
        Ctrl-C cannot interrupt the write (they are delivered, to whoever handles them, after)."""
        blocked = _block_signals()
        try:
            fn()
        except Exception:
            logger.warning("trl-reporter: could not record how the run ended", exc_info=True)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if self._ours() and self._thread is threading.main_thread():
            self._safely(lambda: self._on_exception(exc_type, exc, tb))
        (self._prev_excepthook or sys.__excepthook__)(exc_type, exc, tb)

    def _thread_excepthook(self, hook_args: Any) -> None:
        if self._ours() and hook_args.thread is self._thread and hook_args.exc_value is not None:
            self._safely(lambda: self._on_exception(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback))
        (self._prev_thread_hook or threading.__excepthook__)(hook_args)

    def _atexit(self) -> None:
        if self._ours():
            self._safely(lambda: self._on_exit(FailureReason.EXITED))

    def _post_run_cell(self, result: Any) -> None:
        # IPython prints a traceback for a callback that raises: this one never does.
        if not self._ours():
            return
        try:
            error = getattr(result, "error_in_exec", None)
            if error is not None:
                self._on_exception(type(error), error, error.__traceback__)
            else:
                self._on_exit(FailureReason.CELL_FINISHED)
        except Exception:
            logger.debug("trl-reporter: post_run_cell hook failed", exc_info=True)
        finally:
            self.uninstall()

    def _signal_handler(self, signum: int, frame: FrameType | None) -> None:
        previous = self._prev_signals.get(signum, signal.SIG_DFL)
        if previous is signal.SIG_IGN:
            return  # the program chose to ignore it: training goes on, and so does the run
        name = signal.Signals(signum).name
        if self._ours():
            self._safely(lambda: self._on_signal(name))
            self.uninstall()
        if callable(previous):
            previous(signum, frame)  # e.g. Python's SIGINT handler raises KeyboardInterrupt
            # It returned: the program handled the signal and training goes on.
            if os.getpid() == self._pid:
                self._safely(lambda: self._on_signal_survived(name))
            return
        # SIG_DFL, or a handler installed outside Python: die by the signal, as the scheduler
        # expects (never turn a SIGTERM into exit code 0).
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _block_signals() -> bool:
    """Block SIGINT and SIGTERM for this thread, where that is possible; True if done."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return False
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    except (OSError, ValueError):
        return False
    return True
