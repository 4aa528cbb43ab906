"""End-to-end behaviour of ReportCallback with a real SFTTrainer on a tiny real model."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
from helpers import (
    cache_dataset_as,
    cache_model_as,
    only_report,
    report_files,
    run_states,
    run_titles,
    section_order,
    train,
)
from transformers import EarlyStoppingCallback, TrainerCallback

from trl_reporter import ReportCallback

RUN_SECTIONS = ["Training Parameters", "Run Status", "Run Logs", "Trackio Logs", "Run Evaluations"]


@pytest.fixture(scope="module")
def default_report(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of one zero-config training, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("default") / "project"
    (root / ".git").mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        train(tiny_model, [ReportCallback()])
    finally:
        os.chdir(cwd)
    return only_report(root)


def test_zero_config_instance_writes_every_section_in_the_guides_order(default_report: str) -> None:
    report = default_report
    headings = section_order(report)
    assert headings[0] == "tiny"  # experiment named after output_dir's basename
    assert headings[1] == "Base Model & Dataset: tiny-model on an unnamed dataset"
    assert headings[3:8] == RUN_SECTIONS
    assert headings[-1] == "Experiment Evaluations"
    [(name, _, status)] = run_titles(report)
    assert status == "Success"
    assert "All times are UTC" in report
    assert "| Parameter | Value |\n|-----------|-------|\n" in report
    assert "| Learning Rate | 0.001 |" in report
    assert "`Success`: trained 6 of 6 steps in" in report
    assert f"&amp;runs={name}&amp;" in report  # the run-level iframe selects this run


def test_zero_config_class_form_works_too(project: Path, tiny_model: Path) -> None:
    train(tiny_model, [ReportCallback])

    [(_, _, status)] = run_titles(only_report(project))
    assert status == "Success"


def test_report_shows_run_in_progress_with_parameters_and_trackio_link_during_training(
    project: Path, tiny_model: Path
) -> None:
    seen: dict[str, str] = {}

    class ReadReportMidway(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                seen["report"] = only_report(project)

    train(tiny_model, [ReportCallback(), ReadReportMidway()])

    midway = seen["report"]
    [(name, _, status)] = run_titles(midway)
    assert status == "In Progress"
    assert "`In Progress`: started" in midway
    assert "| Batch Size (per device) | 4 |" in midway
    assert (
        f"[Trackio Logs](http://127.0.0.1:7860/?project=huggingface&runs={name}&sidebar=hidden&navbar=hidden)" in midway
    )
    [(_, _, final_status)] = run_titles(only_report(project))
    assert final_status == "Success"


def test_two_runs_share_one_file_and_a_new_dataset_opens_a_new_group(project: Path, tiny_model: Path) -> None:
    from datasets import Dataset

    train(tiny_model, [ReportCallback()], run_name="lr-1e-3")
    train(tiny_model, [ReportCallback()], run_name="lr-5e-4", learning_rate=5e-4)
    report = only_report(project)
    assert [t[0] for t in run_titles(report)] == ["lr-1e-3", "lr-5e-4"]
    assert report.count("## Base Model & Dataset") == 1

    cache_dataset_as("acme/OtherData", ["one two three"] * 16)
    from datasets import load_dataset

    other = load_dataset("acme/OtherData", split="train")
    assert isinstance(other, Dataset)
    train(tiny_model, [ReportCallback()], run_name="other-data", dataset=other)
    report = only_report(project)
    assert report.count("## Base Model & Dataset") == 2
    assert [t[0] for t in run_titles(report)] == ["lr-1e-3", "lr-5e-4", "other-data"]
    assert len(report_files(project)) == 1


def test_hub_ids_become_links_and_a_cache_guess_is_marked(project: Path, tiny_model: Path) -> None:
    from datasets import load_dataset

    cache_model_as(tiny_model, "acme/Tiny-Llama")
    cache_dataset_as("trl-lib/Capybara", ["a b c d e f"] * 16)
    dataset = load_dataset("trl-lib/Capybara", split="train")

    train("acme/Tiny-Llama", [ReportCallback()], dataset=dataset, output_dir="trainer_output")

    report = only_report(project)
    assert report_files(project)[0].name == "Tiny-Llama-sft.md"  # <model name>-<trainer kind>
    assert "## Base Model & Dataset: Tiny-Llama on trl-lib/capybara\n" in report
    assert "[Base Model](https://huggingface.co/acme/Tiny-Llama)<br>\n" in report
    assert "[Dataset](https://huggingface.co/datasets/trl-lib/capybara) (guessed from the datasets cache" in report


def test_explicit_dataset_and_hf_endpoint_win(project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org/")
    train(tiny_model, [ReportCallback(dataset="trl-lib/Capybara", base_model="Qwen/Qwen2.5-0.5B")])

    report = only_report(project)
    assert (
        "[Base Model](https://hub.example.org/Qwen/Qwen2.5-0.5B)<br>\n"
        "[Dataset](https://hub.example.org/datasets/trl-lib/Capybara)\n" in report
    )
    assert "guessed" not in report


def test_local_model_path_is_plain_text_not_a_broken_link(default_report: str, tiny_model: Path) -> None:
    report = default_report
    assert f"Base Model: `{tiny_model}` (local path)" in report
    assert "[Base Model](" not in report
    assert "Dataset: unknown" in report


def test_early_stopping_gives_completed(project: Path, tiny_model: Path) -> None:
    from datasets import Dataset

    from trl_reporter.tiny import texts

    train(
        tiny_model,
        [ReportCallback(), EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=100.0)],
        eval_dataset=Dataset.from_dict({"text": texts(8)}),
        max_steps=20,
        eval_strategy="steps",
        eval_steps=1,
        metric_for_best_model="eval_loss",
        load_best_model_at_end=False,
    )

    report = only_report(project)
    [(_, _, status)] = run_titles(report)
    assert status == "Completed"
    assert "`Completed`: stopped early at step 2 of 20" in report
    # the trainer's evaluations reach both evaluation tables, one row per metric
    assert "| Benchmark | Score | Evaluation Job Link |" in report
    run_table, experiment_table = report.split("## Experiment Evaluations")
    assert len(re.findall(r"^\| eval\\_loss \| \d\.\d+ \| local process \d+ on ", run_table, re.M)) == 1
    assert "| Run Title | Benchmark | Score | Evaluation Job Link | Model Link |" in experiment_table
    assert (
        len(re.findall(r"^\| `[^`]+` - `[^`]+` - `Completed` \| eval\\_loss \| \d\.\d+ \|", experiment_table, re.M))
        == 1
    )
    assert "num\\_tokens" not in report  # a token counter, not a score


def test_a_callback_stopping_training_gives_completed(project: Path, tiny_model: Path) -> None:
    class StopAtTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                control.should_training_stop = True

    train(tiny_model, [ReportCallback(), StopAtTwo()])

    [(_, _, status)] = run_titles(only_report(project))
    assert status == "Completed"
    [state] = run_states(project)
    assert state["steps_done"] == 2 and state["steps_planned"] == 6


def test_faked_trackio_space_gives_hf_space_url(project: Path, tiny_model: Path) -> None:
    class PretendSpace(TrainerCallback):
        # Runs before ReportCallback, after the Trackio run exists: set the Space id as a
        # Space-backed trackio.init would (only the network part is faked).
        def on_train_begin(self, args, state, control, **kwargs):
            import trackio

            trackio.context_vars.current_run.get()._space_id = "Acme_Org/My.Trackio"

    train(
        tiny_model, [PretendSpace(), ReportCallback()], report_to="trackio", run_name="space-run", project="exp-space"
    )

    report = only_report(project)
    url = "https://acme-org-my-trackio.hf.space/?project=exp-space&runs=space-run&sidebar=hidden&navbar=hidden"
    assert f"[Trackio Logs]({url})\n" in report
    assert (
        f'<iframe src="{url.replace("&", "&amp;")}" style="width:1600px; height:500px; border:0;"></iframe>' in report
    )
    assert "trackio show" not in report


def test_trackio_off_says_so(project: Path, tiny_model: Path) -> None:
    train(tiny_model, [ReportCallback(trackio=False)], run_name="no-trackio")

    report = only_report(project)
    assert "Trackio logging is off for this run" in report
    assert "<iframe" not in report
    [(name, _, _)] = run_titles(report)
    assert name == "no-trackio"


def test_hf_job_with_owner_links_the_job_logs(project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_ID", "6928a8f1c0ffee0012345678")
    monkeypatch.setenv("TRL_REPORTER_JOB_OWNER", "acme")
    train(tiny_model, [ReportCallback()])

    report = only_report(project)
    assert "#### Run Logs\n\n[Run Logs](https://huggingface.co/jobs/acme/6928a8f1c0ffee0012345678)\n" in report


def test_hf_job_without_owner_says_how_to_link() -> None:
    from trl_reporter.records import RunRecord
    from trl_reporter.template import renderer

    run = RunRecord(key="r", run_name="r", experiment="e", started_at=1.7e9, job_id="6928a8f1c0ffee0012345678")
    report = renderer()("e", [run])
    assert "HF Job `6928a8f1c0ffee0012345678`; set `TRL_REPORTER_JOB_OWNER`" in report


def test_local_run_logs_name_host_and_pid(default_report: str) -> None:
    import socket

    assert f"Local process `{os.getpid()}` on host `{socket.gethostname()}` (not an HF Job)." in default_report


def test_rank_other_than_zero_writes_nothing(project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import SFTTrainer

    monkeypatch.setattr(SFTTrainer, "is_world_process_zero", lambda self: False)
    train(tiny_model, [ReportCallback()])

    assert not (project / "training_reports").exists()


def test_explicit_settings_beat_environment_which_beats_detection(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRL_REPORTER_EXPERIMENT", "from-env")
    monkeypatch.setenv("TRL_REPORTER_DIR", str(tmp_path / "env-reports"))
    train(tiny_model, [ReportCallback()], project="from-project")
    assert (tmp_path / "env-reports" / "from-env.md").is_file()

    train(tiny_model, [ReportCallback("explicit", report_dir=tmp_path / "explicit-reports")])
    assert (tmp_path / "explicit-reports" / "explicit.md").is_file()


def test_project_argument_names_the_experiment(project: Path, tiny_model: Path) -> None:
    train(tiny_model, [ReportCallback()], project="my-experiment")
    assert [p.name for p in report_files(project)] == ["my-experiment.md"]


def test_report_dir_is_at_the_project_root_from_a_subdirectory(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = project / "scripts" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    train(tiny_model, [ReportCallback()])
    assert len(report_files(project)) == 1
    assert not (sub / "training_reports").exists()


def test_parameters_table_is_curated_and_keeps_secrets_out(project: Path, tiny_model: Path) -> None:
    token = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"
    train(
        tiny_model,
        [ReportCallback()],
        hub_token=token,
        gradient_accumulation_steps=2,
        warmup_steps=0.1,
        pad_token="<pad>",
    )

    report = only_report(project)
    for label in (
        "Trainer",
        "Learning Rate",
        "Effective Batch Size",
        "Optimizer",
        "LR Scheduler",
        "Weight Decay",
        "Max Grad Norm",
        "Precision",
        "Seed",
        "Max Sequence Length",
        "Packing",
        "Gradient Checkpointing",
        "Parameters",
        "Devices",
    ):
        assert f"| {label} |" in report, label
    assert "| Effective Batch Size | 8 (4 × 2 × 1 device) |" in report
    assert "| LR Scheduler | linear, warmup ratio 0.1 |" in report
    assert "| pad\\_token | \\<pad\\> |" in report  # harmless look-alike, not masked
    everything = report + json.dumps(run_states(project))
    assert token not in everything
    assert "hub_token" not in everything and "hub\\_token" not in everything


def test_writes_happen_on_status_changes_not_per_step(project: Path, tiny_model: Path) -> None:
    callback = ReportCallback()
    train(tiny_model, [callback], max_steps=40, logging_steps=1)

    assert callback.session is not None
    assert 1 <= callback.session.writes <= 3  # begin, (trackio found later), end


def test_a_broken_report_dir_warns_and_training_finishes(
    project: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = project / "not-a-dir"
    blocker.write_text("a file where the report directory should be")
    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        trainer = train(tiny_model, [ReportCallback(report_dir=blocker / "reports")])

    assert trainer.state.global_step == 6
    warnings = [r for r in caplog.records if r.name.startswith("trl_reporter")]
    assert len(warnings) == 1
    assert "Training continues" in warnings[0].getMessage()


def test_trackio_false_still_links_a_trackio_run_started_by_report_to(project: Path, tiny_model: Path) -> None:
    train(tiny_model, [ReportCallback(trackio=False)], report_to="trackio", run_name="linked", project="exp-linked")

    report = only_report(project)
    assert (
        "[Trackio Logs](http://127.0.0.1:7860/?project=exp-linked&runs=linked&sidebar=hidden&navbar=hidden)" in report
    )
    assert "Trackio logging is off" not in report


def test_resuming_from_a_checkpoint_continues_the_same_run_section(project: Path, tiny_model: Path) -> None:
    class StopAtThree(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_training_stop = True

    common = dict(run_name="resumable", output_dir="out/resumable", save_strategy="steps", save_steps=3)
    train(tiny_model, [ReportCallback(), StopAtThree()], **common)
    assert run_titles(only_report(project))[0][2] == "Completed"

    from datasets import Dataset
    from helpers import sft_config
    from trl import SFTTrainer

    from trl_reporter.tiny import texts

    resumed = SFTTrainer(
        model=str(tiny_model),
        args=sft_config(**common),
        train_dataset=Dataset.from_dict({"text": texts(32)}),
        callbacks=[ReportCallback()],
    )
    resumed.train(resume_from_checkpoint=str(project / "out" / "resumable" / "checkpoint-3"))

    report = only_report(project)
    assert [(n, s) for n, _, s in run_titles(report)] == [("resumable", "Success")]
    assert "Ended `Completed` at step 3 (" in report and " at step 3 from `checkpoint-3`, on host " in report
    [state] = run_states(project)
    assert state["steps_done"] == 6 and len(state["resumed"]) == 1
    from trl_reporter.liveness import process_started

    assert state["process_started"] == process_started(os.getpid())  # liveness follows the resuming process


def test_a_template_that_fails_to_render_never_drops_the_run(
    project: Path, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    template = tmp_path / "broken.md.j2"
    template.write_text("# {{ experiment }} {{ no_such_field }}\n")
    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        trainer = train(tiny_model, [ReportCallback(template=template, trackio=False)], run_name="kept")

    assert trainer.state.global_step == 6
    [state] = run_states(project)
    assert (state["run_name"], state["status"]) == ("kept", "Success")  # saved even though rendering failed
    assert len([r for r in caplog.records if r.name.startswith("trl_reporter")]) == 1


def test_push_to_hub_links_the_repo_the_trainer_created(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import Trainer

    def fake_init_hf_repo(self, token=None):  # the only part that needs the network
        self.hub_model_id = "acme/tiny-pushed"

    monkeypatch.setattr(Trainer, "init_hf_repo", fake_init_hf_repo)
    monkeypatch.setattr(Trainer, "push_to_hub", lambda self, *a, **k: None)
    from datasets import Dataset

    from trl_reporter.tiny import texts

    train(
        tiny_model,
        [ReportCallback(trackio=False)],
        push_to_hub=True,
        eval_strategy="steps",
        eval_steps=6,
        eval_dataset=Dataset.from_dict({"text": texts(8)}),
    )
    report = only_report(project)
    assert "[Model Link](https://huggingface.co/acme/tiny-pushed)" in report


def test_the_report_is_announced_once_on_stderr_and_can_be_quiet(
    project: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    train(tiny_model, [ReportCallback()])
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("* trl-reporter:")]
    assert len(said) == 1
    assert "is reported in training_reports/tiny.md" in said[0] and "trl-report show tiny" in said[0]

    monkeypatch.setenv("TRL_REPORTER_QUIET", "1")
    train(tiny_model, [ReportCallback()])
    assert "* trl-reporter:" not in capsys.readouterr().err
