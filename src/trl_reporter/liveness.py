"""Is a recorded run still alive? Hard kills (SIGKILL, the OOM killer, a lost node) leave no trace
in the process itself, so the next reporter start or CLI call has to tell.

On the run's own host a run is alive while a process with its pid *and its start time* exists
(the start time guards against pid reuse). On another host, only the heartbeat's age can tell:
a run that has not written one for :data:`STALE_AFTER` seconds is shown as stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from . import detect
from .records import Failure, RunRecord, Status
from .store import experiments

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 60.0
STALE_AFTER = 5 * HEARTBEAT_EVERY
VANISHED = "the process vanished (killed, out of memory, or the machine restarted)"


def process_started(pid: int) -> float | None:
    """The start time of process ``pid`` on this host, or ``None`` if there is none."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # exists, owned by someone else: alive, start time unknown


def vanished(run: RunRecord, host: str, host_id: str | None = None) -> bool:
    """An unfinished run of this host whose process is gone (or whose pid now belongs to another).

    ``host_id`` (hostname/boot id/PID namespace) sharpens the answer: a run recorded under another
    boot id or another PID namespace is not "this machine now". It may be an earlier boot of this
    machine, or another machine with the same host name on a shared filesystem, or a container
    that shares the host name; its pid means nothing here, so it is left to the heartbeat rule
    (:func:`stale`).
    """
    if run.status.is_final or run.host != host or run.pid is None:
        return False
    if host_id and run.host_id and run.host_id.split("/")[-2:] != host_id.split("/")[-2:]:
        return False
    started = process_started(run.pid)
    if started is None:
        return True
    if started < 0 or run.process_started is None:
        return False
    return abs(started - run.process_started) > 1.0


def last_sign_of_life(run: RunRecord) -> float:
    return max(t for t in (run.started_at, run.heartbeat_at) if t is not None)


def stale(run: RunRecord, now: float) -> bool:
    """An unfinished run that has said nothing for :data:`STALE_AFTER` seconds before ``now``."""
    return not run.status.is_final and now - last_sign_of_life(run) > STALE_AFTER


def reconcile(
    root: Path, render: Callable[[str, list[RunRecord]], str], *, lock_timeout: float
) -> list[RunRecord]:
    """Mark every vanished run of this host under ``root`` as Failure, and re-render its report
    with ``render``.

    Returns the runs it changed. Runs of other hosts are left alone (a dead pid here says nothing
    about a process there). A run's file is read again *after* its process is known to be dead,
    so a run that wrote Success just before exiting keeps it. The failure is dated by the run's
    last sign of life (its start, its last heartbeat), not by when it was found.
    """
    host, this_host = detect.host(), detect.host_id()
    changed: list[RunRecord] = []
    for store in experiments(root):
        suspects = [r for r in store.load_runs() if r.status is Status.IN_PROGRESS and r.host == host]
        dead = []
        for suspect in suspects:
            if not vanished(suspect, host, this_host):
                continue
            run = store.load_run(suspect.run_id)  # the process is gone: this read is its last word
            if run is None or run.status.is_final:
                continue
            run.fail(Failure(reason=VANISHED), at=last_sign_of_life(run))
            store.save_run(run)
            logger.info("trl-reporter: run %r of %r: %s", run.run_name, store.experiment, VANISHED)
            dead.append(run)
        if dead:
            store.render(render, timeout=lock_timeout)
            changed.extend(dead)
    return changed
