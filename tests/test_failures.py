"""Runs that end without on_train_end, in real subprocesses: the report says Failure and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import only_report, run_script, run_states, run_titles


def _run(mode: str, project: Path, tiny_model: Path):
    return run_script("crash.py", mode, str(tiny_model), cwd=project)


def test_uncaught_exception_gives_failure_with_type_message_and_step(project: Path, tiny_model: Path) -> None:
    proc = _run("raise", project, tiny_model)

    assert proc.returncode == 1  # the user's exit status is unchanged
    assert "Boom: the GPU caught fire | at step 3" in proc.stderr  # and so is their traceback
    report = only_report(project)
    [(name, _, status)] = run_titles(report)
    assert (name, status) == ("crash-run", "Failure")
    assert "`Failure`: `Boom`: the GPU caught fire \\| at step 3, at step 3 of 8," in report
    assert "<details><summary>Traceback</summary>" in report
    [state] = run_states(project)
    assert state["failure"]["exc_type"] == "Boom"
    assert state["steps_done"] == 3


@pytest.mark.parametrize("mode", ["exit0", "caught"])
def test_process_ending_without_train_end_is_failure_never_success(mode: str, project: Path, tiny_model: Path) -> None:
    proc = _run(mode, project, tiny_model)

    assert proc.returncode == 0, proc.stderr
    report = only_report(project)
    [(_, _, status)] = run_titles(report)
    assert status == "Failure"
    [state] = run_states(project)
    if mode == "exit0":
        assert "the process exited before training finished" in report
    else:
        # the user caught the exception: excepthook never saw it, atexit did
        assert state["failure"]["reason"] == "exited"
    assert state["steps_done"] == 3


def test_a_late_exception_never_downgrades_a_finished_run(project: Path, tiny_model: Path) -> None:
    proc = _run("after", project, tiny_model)

    assert proc.returncode == 1 and "pushing the model failed" in proc.stderr
    [state] = run_states(project)
    assert state["status"] == "Success" and state["failure"] is None


def test_the_state_machine_refuses_to_change_a_final_status() -> None:
    from trl_reporter.errors import StatusError
    from trl_reporter.records import Failure, FailureReason, RunRecord, Status

    run = RunRecord(key="r", run_name="r", experiment="e", started_at=1.0)
    run.finish(Status.SUCCESS, at=2.0, steps_done=10)
    with pytest.raises(StatusError):
        run.fail(Failure(reason=FailureReason.EXITED), at=3.0)
    with pytest.raises(StatusError):
        run.finish(Status.IN_PROGRESS, at=3.0)
    assert (run.status, run.ended_at, run.failure) == (Status.SUCCESS, 2.0, None)
