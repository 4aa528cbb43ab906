"""Signals, in real subprocesses: the run is Failure on disk before the process exits, the
process still dies by the signal (or with the previous handler's code), SIG_IGN is honoured, and
handlers are chained and restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from helpers import SCRIPTS, only_report, reached, run_states, run_titles, train

from trl_reporter import ReportCallback


def start(mode: str, project: Path, tiny_model: Path, **env: str) -> subprocess.Popen:
    full_env = dict(os.environ, **env)
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "signals.py"), mode, str(tiny_model)],
        cwd=project,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_at_step_3(proc: subprocess.Popen, signum: int) -> tuple[str, str]:
    if reached(proc, "AT STEP 3"):
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return out, err


def test_sigterm_records_failure_and_the_process_still_dies_by_sigterm(project: Path, tiny_model: Path) -> None:
    proc = start("default", project, tiny_model)
    out, err = signal_at_step_3(proc, signal.SIGTERM)

    assert proc.returncode == -signal.SIGTERM, err[-2000:]
    assert "TRAINING RETURNED" not in out
    report = only_report(project)
    [(_, _, status)] = run_titles(report)
    assert status == "Failure"
    assert "terminated by SIGTERM" in report
    [state] = run_states(project)
    assert (state["failure"]["reason"], state["failure"]["signal"]) == ("signal", "SIGTERM")
    assert 3 <= state["steps_done"] < 12


def test_sigint_is_an_interruption_and_the_user_still_sees_keyboardinterrupt(project: Path, tiny_model: Path) -> None:
    proc = start("default", project, tiny_model)
    _, err = signal_at_step_3(proc, signal.SIGINT)

    assert "KeyboardInterrupt" in err
    assert proc.returncode in (1, -signal.SIGINT)  # Python exits on an uncaught KeyboardInterrupt
    [state] = run_states(project)
    assert (state["status"], state["failure"]["reason"], state["failure"]["signal"]) == ("Failure", "signal", "SIGINT")


def test_previous_sigterm_handler_is_called_exactly_once_and_keeps_its_exit_code(
    project: Path, tiny_model: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    proc = start("previous", project, tiny_model, MARKER=str(marker))
    signal_at_step_3(proc, signal.SIGTERM)

    assert proc.returncode == 7
    assert marker.read_text() == "called\n"
    [state] = run_states(project)
    assert (state["status"], state["failure"]["reason"], state["failure"]["signal"]) == ("Failure", "signal", "SIGTERM")


def test_ignored_sigterm_stays_ignored_and_training_finishes(project: Path, tiny_model: Path) -> None:
    proc = start("ignore", project, tiny_model, STEPS="6")
    out, err = signal_at_step_3(proc, signal.SIGTERM)

    assert proc.returncode == 0, err[-2000:]
    assert "TRAINING RETURNED" in out
    [(_, _, status)] = run_titles(only_report(project))
    assert status == "Success"


def test_a_previous_handler_that_returns_lets_the_run_go_on_to_success(project: Path, tiny_model: Path) -> None:
    proc = start("graceful", project, tiny_model, STEPS="6")
    out, err = signal_at_step_3(proc, signal.SIGTERM)

    assert proc.returncode == 0, err[-2000:]
    assert "NOTED" in out and "TRAINING RETURNED" in out
    report = only_report(project)
    [(_, _, status)] = run_titles(report)
    assert status == "Success"
    assert "Received `SIGTERM` at step 3" in report


def test_handlers_are_restored_after_the_run(project: Path, tiny_model: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    excepthook = sys.excepthook
    train(tiny_model, [ReportCallback()])

    assert {s: signal.getsignal(s) for s in before} == before
    assert sys.excepthook is excepthook


def test_trainer_in_a_thread_installs_no_signal_handler_and_works(project: Path, tiny_model: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: dict[str, object] = {}

    def worker() -> None:
        from transformers import TrainerCallback

        class Look(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                seen["handler"] = signal.getsignal(signal.SIGTERM)

        try:
            train(tiny_model, [ReportCallback(), Look()])
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            seen["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=120)

    assert "error" not in seen
    assert seen["handler"] == before
    [(_, _, status)] = run_titles(only_report(project))
    assert status == "Success"
