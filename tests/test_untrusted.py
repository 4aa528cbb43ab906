"""Saved state is input from a stranger: it is committed, merged and pulled. Each test here plays a
hostile collaborator or a faulty machine, with real files, real subprocesses and real signals:
paths that try to escape, templates that try to run code, files with the wrong types, uploads
nobody asked for, secrets in names, a full disk, bytes that are not UTF-8, numbers that are not
ordinary, and a signal that lands while the process renders."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from attacks import store_with_a_good_run
from helpers import SCRIPTS, only_report, run_states, run_titles, sigkill_at_step_3, train
from transformers import TrainerCallback

from trl_reporter import ReportCallback
from trl_reporter.cli import main as cli_main
from trl_reporter.records import RunRecord, Status
from trl_reporter.redact import scrub_text
from trl_reporter.store import ExperimentStore

TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
SECRET_PART = "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
EVIL_TEMPLATE = '{{ cycler.__init__.__globals__.os.system("touch PWNED") }}'


def _write_run_file(store: ExperimentStore, stem: str, **fields: object) -> Path:
    data = RunRecord(key=stem, run_name=stem, experiment=store.experiment, started_at=1_700_000_100.0).to_dict()
    data.update(fields)
    path = store.runs_dir / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


# -- 1. no path escapes the report directory ------------------------------------------------------


def test_a_run_id_that_climbs_out_is_skipped_and_add_eval_writes_nothing_outside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "project" / "training_reports"
    store = store_with_a_good_run(root)
    planted = _write_run_file(store, "evil", key="../../../../escaped/evil", run_name="evil")
    outside_before = _files_under(tmp_path) - _files_under(root)

    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        code = cli_main(["--report-dir", str(root), "add-eval", "exp", "evil", "--benchmark", "b", "--score", "1"])

    assert code == 2  # the run does not exist for the reporter: its file was skipped
    assert _files_under(tmp_path) - _files_under(root) == outside_before
    assert not list(tmp_path.rglob("escaped"))
    assert any(planted.name in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert [r.run_name for r in store.load_runs()] == ["good"]


def test_a_run_file_whose_run_id_differs_from_its_file_name_is_skipped(tmp_path: Path) -> None:
    store = store_with_a_good_run(tmp_path / "training_reports")
    _write_run_file(store, "alias", key="good", run_name="impostor")
    assert [r.run_name for r in store.load_runs()] == ["good"]


def test_a_resumed_training_never_follows_a_planted_run_id(project: Path, tiny_model: Path) -> None:
    class StopAtThree(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_training_stop = True

    common = dict(run_name="resumable", output_dir="out/resumable", save_strategy="steps", save_steps=3)
    train(tiny_model, [ReportCallback("exp", trackio=False), StopAtThree()], **common)
    [state_file] = (project / "training_reports").glob(".trl-reporter/exp/runs/resumable.json")
    data = json.loads(state_file.read_text())
    data["key"] = "../../../../escaped/evil"
    state_file.write_text(json.dumps(data))

    from datasets import Dataset
    from helpers import sft_config
    from trl import SFTTrainer

    from trl_reporter.tiny import texts

    resumed = SFTTrainer(
        model=str(tiny_model),
        args=sft_config(**common),
        train_dataset=Dataset.from_dict({"text": texts(32)}),
        callbacks=[ReportCallback("exp", trackio=False)],
    )
    resumed.train(resume_from_checkpoint=str(project / "out" / "resumable" / "checkpoint-3"))

    assert not list(project.parent.rglob("escaped"))
    assert not list(project.parent.parent.rglob("escaped"))
    assert run_titles(only_report(project))[-1][2] == "Success"


# -- 2. nothing in the saved state can run code ---------------------------------------------------


def test_a_template_named_in_experiment_json_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    root = project / "training_reports"
    store = store_with_a_good_run(root)
    (project / "evil.md.j2").write_text(EVIL_TEMPLATE)
    meta = json.loads(store.meta_path.read_text())
    meta["template"] = "evil.md.j2"  # relative: it resolved against the working directory
    store.meta_path.write_text(json.dumps(meta))
    monkeypatch.chdir(project)

    assert cli_main(["--report-dir", str(root), "render"]) == 0

    assert not (project / "PWNED").exists()
    assert "# exp" in store.report_path.read_text()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_even_the_users_own_template_renders_in_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    root = tmp_path / "training_reports"
    store_with_a_good_run(root)
    evil = tmp_path / "evil.md.j2"
    evil.write_text(EVIL_TEMPLATE)
    monkeypatch.chdir(tmp_path)
    if how == "environment":
        monkeypatch.setenv("TRL_REPORTER_TEMPLATE", str(evil))
        args = ["--report-dir", str(root), "render"]
    else:
        args = ["--report-dir", str(root), "render", "--template", str(evil)]

    code = cli_main(args)

    assert code == 2
    assert not (tmp_path / "PWNED").exists()
    assert "unsafe" in capsys.readouterr().err


def test_a_named_template_is_used_and_never_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "training_reports"
    store = store_with_a_good_run(root)
    mine = tmp_path / "mine.md.j2"
    mine.write_text("# my own report of {{ experiment }}\n")

    assert cli_main(["--report-dir", str(root), "render", "--template", str(mine)]) == 0
    assert store.report_path.read_text() == "# my own report of exp\n"
    assert "template" not in json.loads(store.meta_path.read_text())

    assert cli_main(["--report-dir", str(root), "render"]) == 0
    assert store.report_path.read_text().startswith("# exp\n\nTraining report kept by trl-reporter")


# -- 3. no Trackio upload the user did not ask for -------------------------------------------------


def test_trackio_started_by_the_reporter_stays_local_on_push(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trackio

    calls: list[str] = []
    # The narrowest boundary to the network: the two trackio calls that would upload.
    monkeypatch.setattr(trackio, "sync", lambda *a, **k: calls.append("sync") or "acme/space")
    monkeypatch.setattr(trackio, "freeze", lambda *a, **k: calls.append("freeze") or "acme/space")
    callback = ReportCallback()
    trainer = train(tiny_model, [callback])
    # What Trainer.push_to_hub() and every checkpoint push do before uploading:
    trainer.callback_handler.on_push_begin(trainer.args, trainer.state, trainer.control)

    assert calls == []
    assert not any(str(t).startswith("trackio") for t in (getattr(trainer.model, "model_tags", None) or []))
    assert "[Trackio Logs](http://127.0.0.1:7860/" in only_report(project)


def test_trackio_is_not_started_by_the_reporter_when_the_environment_names_a_space(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trackio

    monkeypatch.setenv("TRACKIO_SPACE_ID", "acme/trackio")
    started: list[object] = []
    monkeypatch.setattr(trackio, "init", lambda *a, **k: started.append(k))
    train(tiny_model, [ReportCallback()])
    assert started == []
    report = only_report(project)
    assert "TRACKIO\\_SPACE\\_ID" in report or "TRACKIO_SPACE_ID" in report


# -- 4. secrets never reach any file, file names included ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"eval_{TOKEN}",
        f"run_{TOKEN}",
        f"{TOKEN}_v2",
        f"x{TOKEN}",
        f"({TOKEN})",
        f"a-{TOKEN}.json",
        "eval_https://user:pw@host.example/x",
        "run-https://user:s3cret@host/x",
    ],
)
def test_tokens_are_redacted_in_every_position(text: str) -> None:
    redacted = scrub_text(text)
    assert SECRET_PART not in redacted and "s3cret" not in redacted and ":pw@" not in redacted


def test_secret_in_run_and_experiment_names_never_reaches_a_file_or_file_name(
    project: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="trl_reporter"):
        callback = ReportCallback(
            f"exp_{TOKEN}", trackio=False, dataset=f"acme/data_{TOKEN}", base_model=f"acme/model-{TOKEN}"
        )
        trainer = train(tiny_model, [callback], run_name=f"run_{TOKEN}_v2", output_dir=f"out/dir_{TOKEN}")
        trainer.callback_handler.on_evaluate(
            trainer.args, trainer.state, trainer.control, metrics={f"eval_{TOKEN}": 0.5}
        )
    assert (
        cli_main(
            [
                "add-eval",
                f"exp_{TOKEN}",
                f"run_{TOKEN}_v2",
                "--benchmark",
                f"b_{TOKEN}",
                "--score",
                "1",
                "--model-link",
                "https://user:s3cret@host.example/m",
            ]
        )
        == 2
    )  # the name was redacted
    assert (
        cli_main(
            [
                "add-eval",
                "exp_***",
                "run_***_v2",
                "--benchmark",
                f"b_{TOKEN}",
                "--score",
                "1",
                "--model-link",
                "https://user:s3cret@host.example/m",
            ]
        )
        == 0
    )
    reports = project / "training_reports"
    for path in reports.rglob("*"):
        assert SECRET_PART not in str(path.relative_to(project))
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert SECRET_PART not in text and "s3cret" not in text
    assert all(SECRET_PART not in r.getMessage() for r in caplog.records)
    assert "eval\\_\\*\\*\\*" in only_report(project)
    assert len(run_states(project)) == 1


# -- 5. one bad file never freezes an experiment ---------------------------------------------------

BAD_FIELDS = {
    "string-step": {"steps_done": "12"},
    "far-future": {"started_at": 1e20},
    "infinite-start": {"started_at": "inf"},
    "host-id-without-slash": {"host_id": "nohost", "host": None, "pid": 1},
    "negative-pid": {"pid": -5},
    "huge-int": {"steps_planned": 10**40},
    "status": {"status": "Exploded"},
    "parameters": {"parameters": [["a", "b", "c"]]},
    "link": {"base_model": {"name": 5}},
    "trackio": {"trackio": {"project": "p", "run": "r", "base_url": "javascript:alert(1)", "local": "yes"}},
    "resumed": {"resumed": [{"at": "yesterday", "step": 1}]},
    "evaluations": {"evaluations": [{"benchmark": 3, "score": 1.0}]},
    "surrogate-url": {"job_url": "https://h/\ud800"},
    "surrogate-trackio": {"trackio": {"project": "p\ud800", "run": "r", "base_url": "http://h/", "local": True}},
    "not-an-object": None,
}


def test_files_with_wrong_types_are_skipped_with_a_warning_naming_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training_reports"
    store = store_with_a_good_run(root)
    for key, fields in BAD_FIELDS.items():
        if fields is None:
            (store.runs_dir / f"{key}.json").write_text("[1, 2, 3]")
        else:
            _write_run_file(store, key, **fields)
    evals = store.evals_dir / "good"
    evals.mkdir(parents=True)
    (evals / "1-bad.json").write_text(json.dumps({"schema": 1, "evaluations": [{"benchmark": ["x"], "score": 1}]}))
    (evals / "2-ok.json").write_text(json.dumps({"schema": 1, "evaluations": [{"benchmark": "mmlu", "score": 0.5}]}))

    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        for command in (["list"], ["show", "exp"], ["show", "exp", "--json"], ["reconcile"], ["render"]):
            assert cli_main(["--report-dir", str(root), *command]) == 0, command
        assert cli_main(["--report-dir", str(root), "add-eval", "exp", "good", "--benchmark", "x", "--score", "2"]) == 0

    report = store.report_path.read_text()
    # A bad evaluation inside a run file costs that evaluation, not the run.
    assert [t[0] for t in run_titles(report)] == ["good", "evaluations"]
    assert "| mmlu | 0.5 |" in report or "| mmlu | 0.5000 |" in report
    messages = " ".join(r.getMessage() for r in caplog.records)
    for key in BAD_FIELDS:
        assert f"{key}.json" in messages, key
    assert "1-bad.json" in messages


@pytest.mark.parametrize(
    "rows",
    [
        [["parameters", {"total": 1, "trainable": 10**400}]],
        [["effective_batch_size", {"per_device": 10**3000, "accumulation": 10**3000, "devices": 1}]],
        [["scheduler", {"type?": 1}], ["lora", {"type?": "x", "r": 1}]],
        [["trainer", {"class": "T", "versions": [["only-one"]]}], ["text", ["label"]], ["seed", {"k": [1, None]}]],
    ],
    ids=["huge-int", "huge-product", "optional-marker-as-key", "short-pairs"],
)
def test_parameter_rows_of_any_shape_are_shown_never_fatal(tmp_path: Path, rows: list) -> None:
    root = tmp_path / "training_reports"
    store = store_with_a_good_run(root)
    _write_run_file(store, "odd", parameters=rows)

    assert cli_main(["--report-dir", str(root), "render"]) == 0
    report = store.report_path.read_text()
    assert [t[0] for t in run_titles(report)] == ["good", "odd"]
    assert all(
        line.count(" | ") == 1
        for line in report.split("### `odd`")[1].split("#### Run Status")[0].splitlines()
        if line.startswith("| ") and "---" not in line
    )


def test_an_evaluation_metric_too_large_for_a_float_is_saved_readably(project: Path, tiny_model: Path) -> None:
    callback = ReportCallback(trackio=False)
    trainer = train(tiny_model, [callback])
    trainer.callback_handler.on_evaluate(
        trainer.args, trainer.state, trainer.control, metrics={"eval_big": 10**400, "eval_loss": 1.5}
    )
    assert cli_main(["render"]) == 0
    report = only_report(project)
    assert "| eval\\_big | inf |" in report
    assert "| eval\\_loss | 1.5" in report


# -- 6. the markdown catches up with the state -----------------------------------------------------


def _hold_lock(store: ExperimentStore, seconds: float) -> subprocess.Popen:
    code = (
        "import filelock, sys, time\n"
        "with filelock.FileLock(sys.argv[1]):\n"
        "    print('HELD', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(store.lock_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
    return proc


@pytest.mark.parametrize("command", [["list"], ["show", "exp"], ["reconcile"]])
def test_every_command_brings_a_report_that_is_behind_up_to_date(tmp_path: Path, command: list[str]) -> None:
    from trl_reporter.template import renderer

    root = tmp_path / "training_reports"
    store = store_with_a_good_run(root)
    assert store.render(renderer(), timeout=5)
    late = RunRecord(key="late", run_name="late", experiment="exp", started_at=1_700_000_200.0)
    store.save_run(late)
    holder = _hold_lock(store, 1.5)
    assert not store.render(renderer(), timeout=0.1)  # another process holds the lock
    holder.communicate()
    late.finish(Status.SUCCESS, at=1_700_000_300.0, steps_done=3)
    store.save_run(late)  # its end is saved; nobody rendered it

    assert cli_main(["--report-dir", str(root), *command]) == 0

    assert ("late", "2023-11-14 22:16:40", "Success") in run_titles(store.report_path.read_text())


def test_a_writer_that_holds_the_lock_renders_what_was_saved_meanwhile(tmp_path: Path) -> None:
    from trl_reporter.template import renderer

    root = tmp_path / "training_reports"
    store = store_with_a_good_run(root)
    render = renderer()
    other = RunRecord(key="other", run_name="other", experiment="exp", started_at=1_700_000_200.0)
    started = threading.Event()

    class Slow:
        draw_chart = render.draw_chart
        chart_digest = render.chart_digest

        def __call__(self, experiment: str, runs: list[RunRecord], **kwargs: Any) -> str:
            started.set()
            time.sleep(0.5)  # another process saves its run's end during this render
            return render(experiment, runs, **kwargs)

    slow = Slow()
    thread = threading.Thread(target=store.render, args=(slow,), kwargs={"timeout": 5})
    thread.start()
    started.wait(5)
    other.finish(Status.SUCCESS, at=1_700_000_300.0)
    ExperimentStore(root, "exp").save_run(other)
    thread.join()

    assert ("other", "2023-11-14 22:16:40", "Success") in run_titles(store.report_path.read_text())


# -- 7, 8 and 6 in real processes: a full disk, bytes that are not UTF-8, SIGTERM inside a render ------


def _script(mode: str, tiny_model: Path, report_dir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "faults.py"), mode, str(tiny_model), str(report_dir)],
        cwd=report_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _sigterm_when_rendering(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RENDERING"):
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            break


@pytest.fixture(scope="module")
def faulty_runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    """Every fault scenario at once, in parallel real processes: {mode: (report dir, exit code, stderr)}."""
    modes = ["enospc-recover", "enospc-stays", "surrogates", "render-signal"]
    dirs = {m: tmp_path_factory.mktemp(m) / "training_reports" for m in modes}
    for d in dirs.values():
        d.parent.joinpath(".git").mkdir()
    procs = {m: _script(m, tiny_model, dirs[m]) for m in modes}
    _sigterm_when_rendering(procs["render-signal"])
    results = {}
    for mode, proc in procs.items():
        _, err = proc.communicate(timeout=240)
        results[mode] = (dirs[mode], proc.returncode, err)
    return results


def _states(report_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(report_dir.glob(".trl-reporter/*/runs/*.json"))]


def test_a_moment_of_full_disk_at_the_end_does_not_turn_success_into_failure(
    faulty_runs: dict[str, tuple[Path, int, str]],
) -> None:
    report_dir, code, err = faulty_runs["enospc-recover"]
    assert code == 0, err
    [state] = _states(report_dir)
    assert state["status"] == "Success" and state["steps_done"] == 4
    assert cli_main(["--report-dir", str(report_dir), "reconcile"]) == 0
    [state] = _states(report_dir)
    assert state["status"] == "Success"
    assert run_titles((report_dir / "disk.md").read_text())[0][2] == "Success"


def test_a_disk_that_stays_full_is_reported_on_stderr(faulty_runs: dict[str, tuple[Path, int, str]]) -> None:
    report_dir, code, err = faulty_runs["enospc-stays"]
    assert code == 0, err
    assert "trl-reporter" in err and "Success" in err and "could not" in err


def test_text_that_is_not_utf8_is_written_not_lost(faulty_runs: dict[str, tuple[Path, int, str]]) -> None:
    report_dir, code, err = faulty_runs["surrogates"]
    assert code == 1 and "RuntimeError" in err
    [state] = _states(report_dir)
    assert state["status"] == "Failure"
    assert "\\udcff" in state["run_name"] and "\\udcff" in state["failure"]["message"]
    assert all(p.stat().st_size > 0 for p in report_dir.rglob("*.json"))
    [report] = report_dir.glob("*.md")
    text = report.read_text(encoding="utf-8")
    assert "Failure" in text and "udcff" in text


def test_sigterm_while_the_process_renders_leaves_the_report_at_failure(
    faulty_runs: dict[str, tuple[Path, int, str]],
) -> None:
    report_dir, code, err = faulty_runs["render-signal"]
    assert code == -signal.SIGTERM, err
    [state] = _states(report_dir)
    assert state["status"] == "Failure"
    assert run_titles((report_dir / "render.md").read_text())[0][2] == "Failure"


# -- 9. numbers that are not ordinary are shown -----------------------------------------------------


def test_a_nan_loss_and_an_infinite_grad_norm_are_shown_as_themselves(project: Path, tiny_model: Path) -> None:
    import torch

    class PoisonWeights(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    for p in model.parameters():
                        p.fill_(float("nan"))

    train(
        tiny_model,
        [ReportCallback(trackio=False), PoisonWeights()],
        max_steps=6,
        logging_steps=2,
        logging_nan_inf_filter=False,
        max_grad_norm=float("inf"),
    )

    report = only_report(project)
    assert "| Max Grad Norm | inf |" in report
    assert "| Learning Rate | 0.001 |" in report
    status = report.split("#### Run Status")[1].split("####")[0]
    assert "Final training loss nan" in status
    assert "not a finite number" in status


# -- 10. vanished runs are dated by their last sign of life ----------------------------------------


def test_a_vanished_run_is_dated_by_its_last_sign_of_life(project: Path, tiny_model: Path) -> None:
    sigkill_at_step_3(project, tiny_model, steps=400)
    time.sleep(3)
    assert cli_main(["reconcile"]) == 0

    [state] = run_states(project)
    assert state["status"] == "Failure"
    assert state["steps_done"] >= 2  # the first logged step was a sign of life
    assert state["ended_at"] - state["heartbeat_at"] < 1.0
    assert state["ended_at"] < time.time() - 2.5


# -- 11. two machines with one host name -----------------------------------------------------------


def test_a_run_from_another_boot_with_the_same_host_name_is_left_to_the_heartbeat_rule(tmp_path: Path) -> None:
    from trl_reporter import detect

    root = tmp_path / "training_reports"
    store = ExperimentStore(root, "exp")
    hostname, _, namespace = detect.host_id().split("/")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.save_run(
        RunRecord(
            key="twin",
            run_name="twin",
            experiment="exp",
            started_at=time.time(),
            host=hostname,
            host_id=f"{hostname}/another-boot-id/{namespace}",
            pid=dead.pid,
            process_started=123.0,
            heartbeat_at=time.time(),
        )
    )

    assert cli_main(["--report-dir", str(root), "reconcile"]) == 0
    assert store.load_runs()[0].status is Status.IN_PROGRESS


# -- 12. bad CLI input always exits 2 --------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"results": {"t": {"acc,none": ' + "9" * 400 + '}}, "versions": {"t": 1}}',
        "[" * 100_000 + "]" * 100_000,
        '{"results": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + ', "versions": {}}',
    ],
    ids=["400-digit-integer", "deeply-nested-list", "deeply-nested-results"],
)
def test_hostile_results_files_exit_2(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "training_reports"
    store_with_a_good_run(root)
    results = tmp_path / "results.json"
    results.write_text(content)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert cli_main(["--report-dir", str(root), "import-eval", "exp", "good", str(results)]) == 2

    assert "error" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_evaluation_scores_that_overflow_are_not_saved(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    store_with_a_good_run(root)
    assert (
        cli_main(["--report-dir", str(root), "add-eval", "exp", "good", "--benchmark", "b", "--score", "9" * 400]) == 2
    )
    assert not (root / ".trl-reporter" / "exp" / "evals").exists()


# -- the same attacks in bulk (bench/reliability.py runs thousands) --------------------------------


def test_hostile_state_files_cause_no_escape_no_code_and_no_frozen_experiment(tmp_path: Path) -> None:
    from attacks import path_attacks, template_attacks, type_attacks

    for tally in (path_attacks(tmp_path), type_attacks(tmp_path, 150), template_attacks(tmp_path)):
        assert tally.ok, tally
