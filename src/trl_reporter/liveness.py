"""Is a recorded run still alive? Pure predicates over a run record and this machine.

Hard kills (SIGKILL, the OOM killer, a lost node) leave no trace in the process itself, so the
next reporter start or CLI call has to tell (:func:`trl_reporter.maintenance.reconcile` acts on
these answers).

On the run's own host a run is alive while a process with its pid *and its start time* exists
(the start time guards against pid reuse). On another host, only the heartbeat's age can tell:
a run that has not written one for :data:`STALE_AFTER` seconds is shown as stale.
"""

from __future__ import annotations

from .records import RunRecord

HEARTBEAT_EVERY = 60.0
STALE_AFTER = 5 * HEARTBEAT_EVERY


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
    return quiet(run.status.is_final, run.started_at, run.heartbeat_at, now) is not None


def quiet(final: bool, started: float, heartbeat: float | None, now: float | None) -> tuple[float, float] | None:
    """``(last sign of life, seconds quiet)`` of an unfinished run that is stale at ``now``."""
    seen = max(started, heartbeat) if heartbeat is not None else started
    if final or now is None or now - seen <= STALE_AFTER:
        return None
    return seen, now - seen
