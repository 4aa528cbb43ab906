"""Preemption, requeue and retries: one training in several processes is one run.

Each part is a real process (tests/scripts/requeue.py); a part is interrupted by a real SIGTERM
after a checkpoint, and the next part resumes from the latest checkpoint with no run name and
Trackio on, as a relaunched Job or a requeued SLURM job does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SCRIPTS, build_model_once, only_report, reached, run_states, run_titles


@pytest.fixture
def built_model(tiny_model: Path) -> Path:
    return build_model_once(tiny_model)


def part(
    project: Path, model: Path, *, stop_after: int | None = None, sig: int = signal.SIGTERM, **env: str
) -> subprocess.CompletedProcess:
    """Run one part; with ``stop_after``, send it ``sig`` once it saved that step's checkpoint."""
    if stop_after is not None:
        env["SLOW"] = str(stop_after)
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "requeue.py"), str(model)],
        cwd=project,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stop_after is not None:
        assert reached(proc, f"SAVED {stop_after}"), proc.stderr.read()[-3000:] if proc.stderr else ""
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_training_interrupted_and_resumed_is_one_run_that_succeeds(project: Path, built_model: Path) -> None:
    first = part(project, built_model, stop_after=4, EVAL="1")
    assert first.returncode != 0
    [state] = run_states(project)
    assert state["status"] == "Failure"

    second = part(project, built_model, RESUME="1", EVAL="1")
    assert second.returncode == 0, second.stderr[-3000:]
    report = only_report(project)
    [(name, _, status)] = run_titles(report)
    assert status == "Success" and name == state["run_name"]  # the first part's name, kept
    assert re.search(r"Interrupted: terminated by SIGTERM at step \d+ \(", report), report
    assert re.search(
        r"Resumed on [0-9: -]+ at step \d+ from `checkpoint-\d+`, on host `[^`]+` \(process `\d+`\)\.", report
    )
    [final] = run_states(project)
    assert final["run_id"] == state["run_id"] and final["steps_done"] == 12
    assert len(final["resumed"]) == 1 and final["resumed"][0]["ended"] == "signal"
    # Trackio: the first part's run is kept with the second's, and the link shows each. (Trackio
    # may give the second part the same name, and so the same run: transformers seeds `random`.)
    assert final["trackio"] and final["trackio_earlier"] == [state["trackio"]["run"]]
    trackio = report[report.index("#### Trackio Logs") :]
    assert state["trackio"]["run"] in trackio and final["trackio"]["run"] in trackio
    # Training time, not the gap between the parts.
    assert final["paused"] > 0
    # Nothing of the first part is lost: its evaluations go on in the same curve.
    history = json.loads(
        (project / "training_reports" / ".trl-reporter" / "requeue" / "history" / f"{final['key']}.json").read_text()
    )
    evaluated = [step for step, _ in history["series"]["eval_loss"]]
    resumed_at = final["resumed"][0]["step"]
    assert evaluated == list(range(2, 13, 2)) and min(evaluated) < resumed_at < max(evaluated)
    assert [step for step, _ in history["series"]["loss"]] == list(range(1, 13))
    # The mean over the run is over every part (the Trainer's train_loss covers the last one).
    losses = [value for _, value in history["series"]["loss"]]
    assert final["mean_loss"] == pytest.approx(sum(losses) / len(losses))
    # The experiment's own Trackio link shows every part too.
    top = report[: report.index("## Base Model")]
    assert all(run in top for run in {*final["trackio_earlier"], final["trackio"]["run"]})


def test_three_interruptions_in_a_row_stay_one_run(project: Path, built_model: Path) -> None:
    part(project, built_model, stop_after=2)
    part(project, built_model, stop_after=4, RESUME="1")
    part(project, built_model, stop_after=6, RESUME="1")
    last = part(project, built_model, RESUME="1")
    assert last.returncode == 0, last.stderr[-3000:]
    report = only_report(project)
    assert [s for _, _, s in run_titles(report)] == ["Success"]
    assert report.count("Interrupted: terminated by SIGTERM") == 3
    [state] = run_states(project)
    assert [r["step"] for r in state["resumed"]] == sorted(r["step"] for r in state["resumed"])
    assert state["steps_done"] == 12 and len(state["resumed"]) == 3
    # Each part's Trackio run is listed once (transformers seeds Python's random, so parts whose
    # Trackio run was never written may get the same generated name again).
    runs = {*state["trackio_earlier"], state["trackio"]["run"]}
    trackio = report[report.index("#### Trackio Logs") :]
    assert all(run in trackio for run in runs)
    assert ("(every part of this resumed run: Trackio runs" in trackio) == (len(runs) > 1)


def test_a_part_resumed_with_another_learning_rate_keeps_the_first_and_marks_the_change(
    project: Path, built_model: Path
) -> None:
    part(project, built_model, stop_after=4, LR="1e-3")
    resumed = part(project, built_model, RESUME="1", LR="5e-4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = only_report(project)
    match = re.search(r"\| Learning Rate \| 0\.001; \*\*0\.0005\*\* from step (\d+) \(resumed with it\) \|", report)
    assert match, report
    [state] = run_states(project)
    assert dict(state["parameters"])["learning_rate"] == 0.001
    assert state["parameter_changes"] == [["learning_rate", 0.0005, int(match.group(1))]]


def test_a_fresh_training_that_reuses_the_name_gets_its_own_section(project: Path, built_model: Path) -> None:
    assert part(project, built_model, RUN_NAME="same", STEPS="4").returncode == 0
    assert part(project, built_model, RUN_NAME="same", STEPS="4").returncode == 0  # not resumed: fresh
    titles = run_titles(only_report(project))
    assert [(n, s) for n, _, s in titles] == [("same", "Success"), ("same", "Success")]
    assert "Interrupted" not in only_report(project)


def test_a_run_resumed_past_its_plan_reads_sensibly(project: Path, built_model: Path) -> None:
    assert part(project, built_model, RUN_NAME="short", STEPS="4").returncode == 0
    resumed = part(project, built_model, RUN_NAME="short", STEPS="2", RESUME="1")  # from checkpoint-4
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = only_report(project)
    # transformers trains one more step when resumed at or past max_steps.
    assert re.search(r"trained [45] steps \(2 planned: resumed past its plan\)", report), report
    assert not re.search(r"\d+ of 2\b", report)


def test_a_part_killed_outright_is_told_as_vanished(project: Path, built_model: Path) -> None:
    part(project, built_model, stop_after=4, sig=signal.SIGKILL)  # OOM killer, a node lost
    resumed = part(project, built_model, RESUME="1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = only_report(project)
    assert [s for _, _, s in run_titles(report)] == ["Success"]
    assert re.search(r"Interrupted: the process vanished \(killed, out of memory, or the machine restarted\)", report)
    [state] = run_states(project)
    note = state["resumed"][0]
    assert note["ended_step"] >= note["step"]  # it lived at least to the checkpoint it left
    # The steps it logged but never saved come back from the checkpoint's own log.
    history = json.loads(
        (project / "training_reports" / ".trl-reporter" / "requeue" / "history" / f"{state['key']}.json").read_text()
    )
    assert [step for step, _ in history["series"]["loss"]] == list(range(1, 13))


def _stop_at(step: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True

    return Stop()


def test_a_checkpoint_saved_without_the_reporter_resumes_with_it(project: Path, tiny_model: Path) -> None:
    from helpers import train

    from trl_reporter import ReportCallback

    common = dict(run_name="late", output_dir="out/late", save_strategy="steps", save_steps=2, max_steps=6)
    train(tiny_model, [_stop_at(2)], **common)  # the reporter was added only later
    trainer = train(tiny_model, [ReportCallback("exp", trackio=False)], resume=True, **common)
    assert trainer.state.global_step == 6  # the next checkpoints are saved as ever
    [(name, _, status)] = run_titles(only_report(project))
    assert (name, status) == ("late", "Success")


def test_restoring_callback_states_takes_no_setting_from_the_checkpoint(project: Path, tiny_model: Path) -> None:
    from helpers import train

    from trl_reporter import ReportCallback

    common = dict(output_dir="out/restore", save_strategy="steps", save_steps=2, max_steps=6)
    train(tiny_model, [ReportCallback("exp", trackio=False), _stop_at(4)], run_name="first", **common)
    saved = json.loads((project / "out" / "restore" / "checkpoint-4" / "trainer_state.json").read_text())
    entry = saved["stateful_callbacks"]["trl_reporter"]
    assert set(entry) == {"key", "run_id"}  # which run, and nothing else
    train(
        tiny_model,
        [ReportCallback("exp", trackio=False)],
        resume=True,
        run_name="second-name",
        restore_callback_states_from_checkpoint=True,
        **common,
    )
    report = only_report(project)
    assert [(n, s) for n, _, s in run_titles(report)] == [("first", "Success")]
    [state] = run_states(project)
    assert state["run_id"] == entry["run_id"] and len(state["resumed"]) == 1


def test_a_second_training_resumed_while_the_first_still_trains_is_a_run_of_its_own(
    project: Path, built_model: Path
) -> None:
    first = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "requeue.py"), str(built_model)],
        cwd=project,
        env=dict(os.environ, SLOW="2", STEPS="30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert reached(first, "SAVED 2")
        branch = part(project, built_model, RESUME="1", STEPS="4", LR="5e-4")  # a branch off checkpoint-2
        assert branch.returncode == 0, branch.stderr[-3000:]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    states = run_states(project)
    assert len(states) == 2 and len({s["run_id"] for s in states}) == 2
    assert sorted(s["status"] for s in states) == ["Failure", "Success"]
