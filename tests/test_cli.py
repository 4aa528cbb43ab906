"""``trl-report`` as users run it: real subprocesses against reports of real tiny training runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_titles, train

from trl_reporter import ReportCallback, StoreError
from trl_reporter.catalog import claim_run
from trl_reporter.cli import main as cli_main
from trl_reporter.records import Evaluation, RunRecord, Source, Status
from trl_reporter.store import ExperimentStore
from trl_reporter.template import score

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
        "| gsm8k/extractive\\_match (5-shot) | 0.3412 | [Evaluation Job Link](https://huggingface.co/jobs/acme/eval123) |"
        in run_b
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
    assert lines[1].split()[:3] == ["RUN", "KEY", "STATUS"]
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
    assert "| mmlu | 0.5200 |" in report and "| mmlu | 0.4100 |" in report  # no direction known: no best
    assert "| wikitext/word\\_perplexity | **12.50** (best, lower is better) |" in report  # lower for perplexity
    assert "| wikitext/word\\_perplexity | 14.00 |" in report
    for run, value in (("run-a", "0.7"), ("run-b", "0.6")):
        assert cli("add-eval", "cli-exp", run, "--benchmark", "mmlu/acc", "--score", value, cwd=proj).returncode == 0
    report = (proj / "training_reports" / "cli-exp.md").read_text()
    assert "| mmlu/acc | **0.7000** (best, higher is better) |" in report and "| mmlu/acc | 0.6000 |" in report


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
    assert "| mmlu | 0.5000 | [Evaluation Job Link](https://huggingface.co/jobs/acme/evaljob42) |" in report


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
    assert "| hellaswag/acc | 0.6100 | [Evaluation Job Link]" not in report  # no job link was given
    assert "| hellaswag/acc | 0.6100 | — | [Model Link](https://huggingface.co/acme/m) |" in report


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


# -- which run a name reaches: the key first, a shared name never --------------------------------


def _experiment(root: Path, *runs: tuple[str, str | None]) -> ExperimentStore:
    """An experiment ``exp`` with finished runs of these (run name, key) pairs, oldest first; a key
    of None is claimed as a starting run claims it (``<slug>``, ``<slug>-2``, ...)."""
    store = ExperimentStore(root, "exp")
    for i, (name, key) in enumerate(runs):
        if key is None:
            key, _, _ = claim_run(store, name, resuming=False, generated=False)
        at = 1_700_000_000.0 + 600 * i
        record = RunRecord(key=key, run_name=name, experiment="exp", started_at=at, steps_done=4, steps_planned=4)
        record.finish(Status.SUCCESS, at=at + 60)
        store.save_run(record)
    return store


def _scores_by_key(store: ExperimentStore) -> dict[str, list[tuple[str, float | str]]]:
    return {r.key: [(e.benchmark, e.score) for e in r.evaluations] for r in store.load_runs()}


def test_add_eval_reaches_the_run_whose_key_it_names_before_a_shared_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training_reports"
    store = _experiment(root, ("tiny-lr-0.001", None), ("tiny-lr-0.001", None))
    assert [r.key for r in store.load_runs()] == ["tiny-lr-0.001", "tiny-lr-0.001-2"]

    for run, value in (("tiny-lr-0.001", "0.41"), ("tiny-lr-0.001-2", "0.52")):
        assert (
            cli_main(["--report-dir", str(root), "add-eval", "exp", run, "--benchmark", "mmlu", "--score", value]) == 0
        )
    assert capsys.readouterr().out.splitlines() == [f"tiny-lr-0.001\tmmlu\t{score(v)}" for v in (0.41, 0.52)]
    assert _scores_by_key(store) == {"tiny-lr-0.001": [("mmlu", 0.41)], "tiny-lr-0.001-2": [("mmlu", 0.52)]}


@pytest.mark.parametrize(
    "keys", [("my-run", "my-run-2"), (None, None)], ids=["keys-unlike-the-name", "keys-claimed-from-the-name"]
)
def test_a_name_shared_by_runs_is_refused_listing_their_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: tuple[str | None, str | None]
) -> None:
    root = tmp_path / "training_reports"
    store = _experiment(root, ("My Run", keys[0]), ("My Run", keys[1]))
    first, second = (r.key for r in store.load_runs())
    assert first != "My Run" and second != "My Run"
    before = snapshot(root)

    code = cli_main(["--report-dir", str(root), "add-eval", "exp", "My Run", "--benchmark", "mmlu", "--score", "0.5"])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert f"run name 'My Run' is shared by 2 runs of experiment 'exp'; name one by its key: {first}, {second}" in (
        captured.err
    )
    assert snapshot(root) == before
    # Named by its key, each run is reachable.
    assert (
        cli_main(["--report-dir", str(root), "add-eval", "exp", second, "--benchmark", "mmlu", "--score", "0.5"]) == 0
    )
    assert _scores_by_key(store) == {first: [], second: [("mmlu", 0.5)]}


def test_a_shared_name_is_refused_even_past_a_deleted_run_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training_reports"
    store = _experiment(root, ("x y", None), ("x y", None), ("x y", None))
    first, second, third = (r.key for r in store.load_runs())
    store.run_path(second).unlink()  # a run removed by hand: the keys of its name now have a gap
    args = ["--report-dir", str(root), "add-eval", "exp", "x y", "--benchmark", "b", "--score", "1"]
    assert cli_main(args) == 2
    assert f"name one by its key: {first}, {third}" in capsys.readouterr().err
    assert _scores_by_key(store) == {first: [], third: []}


def test_a_name_held_by_one_run_reaches_it_whatever_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "training_reports"
    store = _experiment(root, ("My Run", "my-run"), ("other", "other"), ("Renamed", "other-2"))
    for name in ("My Run", "Renamed"):
        assert cli_main(["--report-dir", str(root), "add-eval", "exp", name, "--benchmark", "b", "--score", "1"]) == 0
    assert _scores_by_key(store) == {"my-run": [("b", 1)], "other": [], "other-2": [("b", 1)]}

    assert cli_main(["--report-dir", str(root), "add-eval", "exp", "nope", "--benchmark", "b", "--score", "1"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'exp' has no run 'nope'; its runs: My Run (key my-run), Renamed (key other-2), other" in err


def test_an_unknown_run_lists_twenty_runs_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training_reports"
    _experiment(root, *((f"run-{i:02d}", None) for i in range(25)))
    assert cli_main(["--report-dir", str(root), "add-eval", "exp", "nope", "--benchmark", "b", "--score", "1"]) == 2
    err = capsys.readouterr().err
    assert "its runs: run-00, run-01," in err and "run-19, and 5 more" in err and "run-20" not in err


def test_python_api_reaches_a_key_first_and_refuses_a_shared_name(tmp_path: Path) -> None:
    from trl_reporter import add_evaluation

    root = tmp_path / "training_reports"
    store = _experiment(root, ("tiny", None), ("tiny", None), ("My Run", "my-run"), ("My Run", "my-run-2"))
    add_evaluation("exp", "tiny", "mmlu", 0.4, report_dir=root)
    add_evaluation("exp", "tiny-2", "mmlu", 0.6, report_dir=root)
    before = snapshot(root)
    with pytest.raises(StoreError, match=r"'My Run' is shared by 2 runs .*: my-run, my-run-2$"):
        add_evaluation("exp", "My Run", "mmlu", 0.5, report_dir=root)
    assert snapshot(root) == before
    assert _scores_by_key(store) == {"tiny": [("mmlu", 0.4)], "tiny-2": [("mmlu", 0.6)], "my-run": [], "my-run-2": []}


def test_show_and_json_name_each_run_by_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "training_reports"
    _experiment(root, ("tiny", None), ("tiny", None), ("evil\x1b[2J\x07", "evil"))
    assert cli_main(["--report-dir", str(root), "show", "exp"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["RUN", "KEY", "STATUS"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["tiny", "tiny", "Success"],
        ["tiny", "tiny-2", "Success"],
        ["evil?[2J?", "evil", "Success"],  # no escape sequence reaches the terminal
    ]

    assert cli_main(["--report-dir", str(root), "show", "exp", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["run"], r["key"]) for r in runs] == [("tiny", "tiny"), ("tiny", "tiny-2"), ("evil\x1b[2J\x07", "evil")]


def test_json_shows_a_benchmark_added_again_once_and_keeps_every_score_in_its_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training_reports"
    store = _experiment(root, ("run", "run"))
    store.add_evaluations(
        "run",
        [
            Evaluation("mmlu", 0.41, source=Source.API, higher_is_better=True),
            Evaluation("gsm8k", 0.2, source=Source.LM_EVAL),
        ],
    )
    args = ["--report-dir", str(root), "add-eval", "exp", "run", "--benchmark", "mmlu", "--score", "0.52"]
    link = "https://huggingface.co/acme/m"
    assert cli_main([*args, "--job-link", "https://huggingface.co/jobs/acme/1", "--model-link", link]) == 0
    capsys.readouterr()

    assert cli_main(["--report-dir", str(root), "show", "exp", "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert run["evaluations"] == [
        {
            "benchmark": "mmlu",
            "score": 0.52,
            "source": "cli",
            "job_link": "https://huggingface.co/jobs/acme/1",
            "model_link": link,
        },
        {"benchmark": "gsm8k", "score": 0.2, "source": "lm-evaluation-harness", "job_link": None, "model_link": link},
    ]
    history = run["evaluation_history"]
    assert [(e["benchmark"], e["score"], e["source"]) for e in history] == [
        ("mmlu", 0.41, "api"),
        ("gsm8k", 0.2, "lm-evaluation-harness"),
        ("mmlu", 0.52, "cli"),
    ]
    assert [e["model_link"] for e in history] == [None, None, link]  # as each was saved
    assert [e["higher_is_better"] for e in history] == [True, None, None]
    assert all(e["step"] is None for e in history)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", e["added_at"]) for e in history)

    assert cli_main(["--report-dir", str(root), "show", "exp"]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith(f"mmlu={score(0.52)}, gsm8k={score(0.2)}")
