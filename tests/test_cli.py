"""``trl-report`` as users run it: real subprocesses against reports of real tiny training runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_titles, train

from trl_reporter import ReportCallback

DATA = Path(__file__).parent / "data"
TRL_REPORT = Path(sys.executable).parent / "trl-report"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trl_reporter", *args],
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A project with two finished runs of experiment 'cli-exp' (and a copy per test)."""
    root = tmp_path_factory.mktemp("cli") / "project"
    (root / ".git").mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        train(tiny_model, [ReportCallback("cli-exp", trackio=False)], run_name="run-a")
        train(tiny_model, [ReportCallback("cli-exp", trackio=False)], run_name="run-b", learning_rate=5e-4)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def proj(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(trained, copy)
    return copy


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_the_user_story_import_lm_eval_add_lighteval_show_both(proj: Path) -> None:
    imported = cli("import-eval", "cli-exp", "run-a", str(DATA / "lm_eval_results.json"), cwd=proj)
    assert imported.returncode == 0, imported.stderr
    assert "run-a\tarc_easy/acc (0-shot)\t0.6561" in imported.stdout
    assert "imported 7 scores from lm-evaluation-harness" in imported.stderr

    added = cli(
        "add-eval",
        "cli-exp",
        "run-b",
        "--benchmark",
        "gsm8k/extractive_match (5-shot)",
        "--score",
        "0.3412",
        "--job-link",
        "https://huggingface.co/jobs/acme/eval123",
        cwd=proj,
    )
    assert added.returncode == 0, added.stderr

    report = (proj / "training_reports" / "cli-exp.md").read_text()
    run_a, run_b = report.split("### `run-b`")[0], report.split("### `run-b`")[1].split("## Experiment Evaluations")[0]
    assert "| arc\\_easy/acc\\_norm (0-shot) | 0.5926 |" in run_a
    assert "| gsm8k/exact\\_match (strict-match, 5-shot) | 0.3374 |" in run_a
    assert (
        "| gsm8k/extractive\\_match (5-shot) | 0.3412 | [Run Logs](https://huggingface.co/jobs/acme/eval123) |" in run_b
    )
    experiment_table = report.split("## Experiment Evaluations")[1]
    assert "| `run-a` - `" in experiment_table and "| arc\\_easy/acc (0-shot) | 0.6561 |" in experiment_table
    assert (
        "gsm8k/extractive\\_match (5-shot) | 0.3412 | [Evaluation Job Link](https://huggingface.co/jobs/acme/eval123) |"
        in experiment_table
    )
    assert "| out/tiny |" in experiment_table  # the model link falls back to the local output dir

    shown = cli("show", "cli-exp", "--json", cwd=proj)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    runs = {r["run"]: r for r in data["runs"]}
    assert set(runs) == {"run-a", "run-b"}
    assert {r["status"] for r in runs.values()} == {"Success"}
    assert runs["run-a"]["steps_done"] == 6 and runs["run-a"]["final_loss"] > 0
    assert {e["benchmark"] for e in runs["run-b"]["evaluations"]} == {"gsm8k/extractive_match (5-shot)"}
    assert len(runs["run-a"]["evaluations"]) == 7

    table = cli("show", "cli-exp", cwd=proj)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[1].split()[:2] == ["RUN", "STATUS"]
    assert any(line.startswith("run-a ") and "Success" in line and "6/6" in line for line in lines)


def test_import_lighteval_results(proj: Path) -> None:
    done = cli("import-eval", "cli-exp", "run-b", str(DATA / "lighteval_results.json"), cwd=proj)
    assert done.returncode == 0, done.stderr
    assert "imported 3 scores from lighteval" in done.stderr
    report = (proj / "training_reports" / "cli-exp.md").read_text()
    assert "| gsm8k/extractive\\_match (5-shot) | 0.3412 |" in report
    assert "| arc:challenge/acc\\_norm (25-shot) | 0.3729 |" in report
    assert "all/" not in report  # lighteval's own aggregate is not a benchmark


def test_best_score_of_each_benchmark_is_marked(proj: Path) -> None:
    for run, value in (("run-a", "0.41"), ("run-b", "0.52")):
        assert cli("add-eval", "cli-exp", run, "--benchmark", "mmlu", "--score", value, cwd=proj).returncode == 0
    for run, value in (("run-a", "12.5"), ("run-b", "14.0")):
        assert (
            cli(
                "add-eval", "cli-exp", run, "--benchmark", "wikitext/word_perplexity", "--score", value, cwd=proj
            ).returncode
            == 0
        )
    report = (proj / "training_reports" / "cli-exp.md").read_text()
    assert "| mmlu | **0.52** (best) |" in report and "| mmlu | 0.41 |" in report
    assert "| wikitext/word\\_perplexity | **12.5** (best) |" in report  # lower is better for perplexity


def test_list_counts_runs_by_status(proj: Path) -> None:
    done = cli("list", cwd=proj)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["EXPERIMENT", "RUNS", "IN", "PROGRESS", "SUCCESS", "COMPLETED", "FAILURE", "REPORT"]
    assert row.split() == ["cli-exp", "2", "0", "2", "0", "0", "cli-exp.md"]


def test_render_rebuilds_the_report_byte_for_byte(proj: Path) -> None:
    report = proj / "training_reports" / "cli-exp.md"
    before = report.read_bytes()
    report.write_text("mangled by a bad merge <<<<<<<\n")
    done = cli("render", "cli-exp", cwd=proj)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(report)
    assert report.read_bytes() == before
    assert cli("render", cwd=proj).returncode == 0  # all experiments


def test_reconcile_marks_a_vanished_process_as_failure(proj: Path) -> None:
    state = next((proj / "training_reports").glob(".trl-reporter/cli-exp/runs/run-b.json"))
    data = json.loads(state.read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    data.update(status="In Progress", ended_at=None, pid=dead.pid, process_started=None)
    state.write_text(json.dumps(data))

    done = cli("reconcile", cwd=proj)
    assert done.returncode == 0, done.stderr
    assert "cli-exp\trun-b\tFailure\tvanished" in done.stdout  # a reason code, for scripts
    titles = run_titles((proj / "training_reports" / "cli-exp.md").read_text())
    assert ("run-b", "Failure") in [(n, s) for n, _, s in titles]


def test_console_script_and_report_dir_option(proj: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [str(TRL_REPORT), "--report-dir", str(proj / "training_reports"), "list"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "cli-exp" in done.stdout
    empty = cli("list", cwd=elsewhere)
    assert empty.returncode == 0 and empty.stdout == "" and "no experiments" in empty.stderr


BAD_INPUT = [
    (["show", "nope"], "no experiment 'nope'", "cli-exp"),
    (["add-eval", "nope", "run-a", "--benchmark", "b", "--score", "1"], "no experiment 'nope'", "cli-exp"),
    (["add-eval", "cli-exp", "run-z", "--benchmark", "b", "--score", "1"], "has no run 'run-z'", "run-a, run-b"),
    (["add-eval", "cli-exp", "run-a", "--benchmark", "b", "--score", "high"], "score 'high' is not a number", None),
    (["add-eval", "cli-exp", "run-a", "--benchmark", "b", "--score", "nan"], "not a finite number", None),
    (
        ["add-eval", "cli-exp", "run-a", "--benchmark", "b", "--score", "1", "--job-link", "javascript:alert(1)"],
        "job link 'javascript:alert(1)' is not an http(s) URL",
        None,
    ),
    (
        ["add-eval", "cli-exp", "run-a", "--benchmark", "b", "--score", "1", "--model-link", "ftp://x/y"],
        "model link 'ftp://x/y' is not an http(s) URL",
        None,
    ),
    (["import-eval", "cli-exp", "run-z", str(DATA / "lm_eval_results.json")], "has no run 'run-z'", "run-a, run-b"),
    (["render", "nope"], "no experiment 'nope'", "cli-exp"),
]


@pytest.mark.parametrize(("args", "message", "names"), BAD_INPUT)
def test_bad_input_fails_cleanly_and_writes_nothing(
    proj: Path, args: list[str], message: str, names: str | None
) -> None:
    before = snapshot(proj)
    done = cli(*args, cwd=proj)
    assert done.returncode == 2
    assert message in done.stderr and done.stdout == ""
    if names:
        assert names in done.stderr  # the error lists what exists
    assert snapshot(proj) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', 'no "results" object'),
        ('{"results": {"x": {"acc": 1}}}', "unrecognised format"),
        ('{"results": {"x": {"acc,none": "N/A"}}, "versions": {}}', "holds no numeric scores"),
    ],
)
def test_malformed_or_unrecognised_results_files_fail_cleanly(
    proj: Path, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(content)
    before = snapshot(proj)
    done = cli("import-eval", "cli-exp", "run-a", str(bad), cwd=proj)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""
    assert snapshot(proj) == before


def test_missing_results_file_fails_cleanly(proj: Path, tmp_path: Path) -> None:
    done = cli("import-eval", "cli-exp", "run-a", str(tmp_path / "absent.json"), cwd=proj)
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_score_added_inside_an_hf_job_links_that_job(proj: Path) -> None:
    env = {"JOB_ID": "evaljob42", "TRL_REPORTER_JOB_OWNER": "acme"}
    assert (
        cli("add-eval", "cli-exp", "run-a", "--benchmark", "mmlu", "--score", "0.5", cwd=proj, env=env).returncode == 0
    )
    report = (proj / "training_reports" / "cli-exp.md").read_text()
    assert "| mmlu | 0.5 | [Run Logs](https://huggingface.co/jobs/acme/evaljob42) |" in report


def test_python_api_adds_an_evaluation(proj: Path) -> None:
    from trl_reporter import add_evaluation

    ev = add_evaluation(
        "cli-exp",
        "run-a",
        "hellaswag/acc",
        0.61,
        model_link="https://huggingface.co/acme/m",
        report_dir=proj / "training_reports",
    )
    assert ev.score == 0.61
    report = (proj / "training_reports" / "cli-exp.md").read_text()
    assert "| hellaswag/acc | 0.61 | [Evaluation Job Link]" not in report  # no job link was given
    assert "| hellaswag/acc | 0.61 |   | [Model Link](https://huggingface.co/acme/m) |" in report


def test_add_eval_while_a_training_run_writes_loses_nothing(proj: Path, tiny_model: Path) -> None:
    env = dict(os.environ)
    trainer = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "scripts" / "many_runs.py"), "9", "4", str(tiny_model), "cli-exp"],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    added = 0
    while trainer.poll() is None and added < 40:
        run = "run-a" if added % 2 else "run-b"
        done = cli("add-eval", "cli-exp", run, "--benchmark", f"concurrent-{added}", "--score", str(added), cwd=proj)
        assert done.returncode == 0, done.stderr
        added += 1
    trainer.communicate(timeout=300)
    assert trainer.returncode == 0

    cli("render", "cli-exp", cwd=proj)
    data = json.loads(cli("show", "cli-exp", "--json", cwd=proj).stdout)
    benchmarks = {e["benchmark"] for r in data["runs"] for e in r["evaluations"]}
    assert {f"concurrent-{i}" for i in range(added)} <= benchmarks
    assert len(data["runs"]) == 2 + 4  # the two runs and the four trained meanwhile, none lost


def test_help_works_and_starting_the_cli_imports_no_torch() -> None:
    # How fast it starts is measured by bench/cli_startup.py, not asserted here.
    done = subprocess.run([str(TRL_REPORT), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "add-eval" in done.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trl_reporter.cli; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "[]"


def test_a_malformed_evaluation_file_is_skipped_not_fatal(proj: Path) -> None:
    bad = proj / "training_reports" / ".trl-reporter" / "cli-exp" / "evals" / "run-a"
    bad.mkdir(parents=True)
    (bad / "0-broken.json").write_text('{"evaluations": [null, {"benchmark": 3}, "x"]}')
    done = cli("show", "cli-exp", cwd=proj)
    assert done.returncode == 0, done.stderr
    assert cli("render", "cli-exp", cwd=proj).returncode == 0


def test_show_flags_a_quiet_run_of_another_host_as_stale(proj: Path) -> None:
    state = proj / "training_reports" / ".trl-reporter" / "cli-exp" / "runs" / "run-b.json"
    data = json.loads(state.read_text())
    long_ago = data["started_at"] - 3600  # quiet for an hour: well past the 5-minute threshold
    data.update(status="In Progress", ended_at=None, host="another-host", started_at=long_ago, heartbeat_at=long_ago)
    state.write_text(json.dumps(data))
    rows = json.loads(cli("show", "cli-exp", "--json", cwd=proj).stdout)["runs"]
    assert {r["run"]: r["stale"] for r in rows} == {"run-a": False, "run-b": True}
    assert cli("render", "cli-exp", cwd=proj).returncode == 0
    assert "**Stale**" in (proj / "training_reports" / "cli-exp.md").read_text()
