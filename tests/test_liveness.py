"""Hard kills: the next reporter start on the same host marks a run whose process vanished as
Failure; a run on another host that stopped sending heartbeats is shown as stale."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import only_report, run_states, sigkill_at_step_3, train

from trl_reporter import ReportCallback
from trl_reporter.liveness import HEARTBEAT_EVERY, STALE_AFTER, vanished
from trl_reporter.records import RunRecord
from trl_reporter.template import renderer


def test_sigkilled_run_becomes_failure_at_the_next_start(project: Path, tiny_model: Path) -> None:
    sigkill_at_step_3(project, tiny_model)
    [killed] = run_states(project)
    assert killed["status"] == "In Progress"  # nothing inside the process could see SIGKILL

    train(tiny_model, [ReportCallback()], run_name="next-start")

    states = {s["run_name"]: s for s in run_states(project)}
    assert states["signal-default"]["status"] == "Failure"
    assert states["signal-default"]["failure"]["reason"] == "vanished"
    assert "process vanished" in only_report(project)
    assert states["next-start"]["status"] == "Success"


def test_a_live_process_is_not_vanished_and_a_reused_pid_is() -> None:
    from trl_reporter.detect import host
    from trl_reporter.liveness import process_started

    me = RunRecord(
        key="m",
        run_name="m",
        experiment="e",
        started_at=1.0,
        host=host(),
        pid=os.getpid(),
        process_started=process_started(os.getpid()),
    )
    assert not vanished(me, host())
    reused = RunRecord(
        key="r", run_name="r", experiment="e", started_at=1.0, host=host(), pid=os.getpid(), process_started=12345.0
    )
    assert vanished(reused, host())
    elsewhere = RunRecord(key="o", run_name="o", experiment="e", started_at=1.0, host="another-host", pid=1)
    assert not vanished(elsewhere, host())


def test_quiet_run_on_another_host_is_shown_stale_once_others_move_on() -> None:
    t0 = 1_700_000_000.0
    quiet = RunRecord(
        key="q",
        run_name="quiet",
        experiment="e",
        started_at=t0,
        host="gpu-7",
        pid=99,
        heartbeat_at=t0 + HEARTBEAT_EVERY,
    )
    later = RunRecord(key="l", run_name="later", experiment="e", started_at=t0 + HEARTBEAT_EVERY + STALE_AFTER + 1)
    alive = renderer()("e", [quiet])
    stale = renderer()("e", [quiet, later])

    assert "Stale" not in alive
    assert "**Stale**: no sign of life since 2023-11-14 22:14:20" in stale
    assert "### `quiet` - `2023-11-14 22:13:20` - `In Progress`" in stale  # the guide's four statuses only


def test_heartbeat_writes_the_state_at_most_once_a_minute(project: Path, tiny_model: Path, monkeypatch) -> None:
    import trl_reporter.liveness as liveness

    monkeypatch.setattr(liveness, "HEARTBEAT_EVERY", 0.0)  # every step, to see it work at all
    callback = ReportCallback(trackio=False)
    train(tiny_model, [callback], max_steps=4)
    [state] = run_states(project)
    assert state["heartbeat_at"] is not None and state["status"] == "Success"
    assert callback.session is not None and callback.session.writes <= 3  # heartbeats never render
