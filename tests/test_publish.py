"""Publishing a report beyond the machine it trains on, and pulling it back.

Real trainings (a tiny model, a real SFTTrainer), real files, real subprocesses and signals; the
Hub is the real huggingface_hub client against tests/fakehub.py on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import fakehub
import pytest
from helpers import REPO, SCRIPTS, reached, train
from transformers import TrainerCallback

from trl_reporter import DestinationError, ReportCallback, publish
from trl_reporter.cli import main as cli
from trl_reporter.destinations import Directory, Remote, parse
from trl_reporter.targets import Target

fake_hub = fakehub.fake_hub
DATASET = ("dataset", "alice/reports")


def state(root: Path, experiment: str = "exp") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / ".trl-reporter" / experiment / "runs").glob("*.json"))]


def sections(report: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith("### ")]


# -- destinations ---------------------------------------------------------------------------------


def test_destinations_are_parsed_and_bad_ones_refused_at_construction(tmp_path: Path) -> None:
    assert parse("hf://datasets/acme/reports/sub/dir") == Remote("dataset", "acme/reports", "sub/dir")
    assert parse("hf://acme/model") == Remote("model", "acme/model", "")
    assert parse("hf://models/acme/model/r") == Remote("model", "acme/model", "r")
    assert parse("hf://buckets/acme/b/x", reading=True) == Remote("bucket", "acme/b", "x")
    assert parse(str(tmp_path / "d")) == Directory(tmp_path / "d")
    for bad in ("hf://spaces/acme/s", "hf://buckets/acme/b", "hf://acme", "hf://datasets/acme/r/../x", "s3://b/x", " "):
        with pytest.raises(DestinationError):
            parse(bad)
    with pytest.raises(DestinationError, match="mount it as a volume"):
        ReportCallback(publish="hf://buckets/acme/b")
    os.environ["TRL_REPORTER_PUBLISH"] = "hf://spaces/acme/s"
    try:
        with pytest.raises(DestinationError):
            ReportCallback()
    finally:
        del os.environ["TRL_REPORTER_PUBLISH"]


# -- a directory ----------------------------------------------------------------------------------


class Watch:
    """A callback that reads the destination while training runs (at step 4)."""

    def __init__(self, dest: Path) -> None:
        from transformers import TrainerCallback

        self.seen: list[str] = []
        dest_ = dest

        class _Cb(TrainerCallback):
            def on_step_end(cb, args, state, control, **kwargs):
                if state.global_step == 4:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline and not (dest_ / "exp.md").exists():
                        time.sleep(0.05)
                    self.seen.append((dest_ / "exp.md").read_text())

        self.callback = _Cb()


def test_a_directory_receives_the_report_charts_and_state_while_training_and_at_the_end(
    project: Path, tiny_model: Path
) -> None:
    dest = project / "volume" / "reports"
    watch = Watch(dest)
    train(tiny_model, [ReportCallback("exp", publish=str(dest)), watch.callback], run_name="lr-1")
    # In Progress reached the destination while training ran.
    assert "`In Progress`" in watch.seen[0]
    report = (dest / "exp.md").read_text()
    assert sections(report) == [line for line in sections(report) if "`Success`" in line] and len(sections(report)) == 1
    assert f"This report is also published to `{dest}`" in report
    assert (dest / "exp" / "loss.svg").is_file() and (dest / "exp" / "runs" / "lr-1.svg").is_file()
    [saved] = state(dest)
    assert saved["status"] == "Success" and saved["run_name"] == "lr-1"
    assert (dest / ".trl-reporter" / "exp" / "history" / "lr-1.json").is_file()
    # The same state as locally: the local run file and the published one are the same run.
    [local] = state(project / "training_reports")
    assert local == saved


def test_runs_of_two_jobs_with_the_same_name_into_one_directory_are_both_kept(
    project: Path, tiny_model: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "shared"
    for job in ("a", "b"):  # two containers: each its own throwaway report folder
        train(
            tiny_model,
            [ReportCallback("exp", report_dir=tmp_path / f"job-{job}", publish=dest)],
            run_name="same",
        )
    runs = state(dest)
    assert sorted(r["key"] for r in runs) == ["same", "same-2"]
    assert len({r["run_id"] for r in runs}) == 2
    assert len(sections((dest / "exp.md").read_text())) == 2


def job_at_step(
    workdir: Path, model: Path, run_name: str, dest: Path | str, *, at: int, steps: int, **extra: str
) -> subprocess.Popen:
    """A job-like training process (tests/scripts/publish_job.py) that publishes to ``dest``,
    returned once it reached step ``at`` (it then slows down)."""
    env = dict(os.environ, JOB_ID=f"job-{run_name}", TRL_REPORTER_PUBLISH=str(dest), **extra)
    env.update(TRL_REPORTER_DIR=str(workdir / "job-disk"), STALL_AT=str(at), STEPS=str(steps))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "publish_job.py"), str(model), run_name],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reached(proc, f"AT STEP {at}")
    return proc


def test_sigterm_mid_training_leaves_the_failure_in_the_destination(tmp_path: Path, tiny_model: Path) -> None:
    dest = tmp_path / "volume"
    proc = job_at_step(tmp_path, tiny_model, "cancelled", dest, at=3, steps=40)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err[-2000:]
    [saved] = state(dest, "job-exp")
    assert saved["status"] == "Failure" and saved["failure"]["signal"] == "SIGTERM"
    report = (dest / "job-exp.md").read_text()
    assert "terminated by SIGTERM" in report and "`Failure`" in sections(report)[0]


def test_the_whole_round_trip_from_a_job_that_disappears_to_a_second_project(tmp_path: Path, tiny_model: Path) -> None:
    dest, job_dir = tmp_path / "bucket", tmp_path / "job-disk"
    env = dict(os.environ, JOB_ID="6928c0ffee", TRL_REPORTER_PUBLISH=str(dest), TRL_REPORTER_DIR=str(job_dir))
    env.update(EVAL="1", ADD_EVAL="1", TRL_REPORTER_JOB_OWNER="acme")
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "publish_job.py"), str(tiny_model), "trip"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "published to" in done.stderr
    shutil.rmtree(job_dir)  # the Job ends: its disk is gone

    project = tmp_path / "laptop"
    project.mkdir()
    reports = project / "training_reports"
    assert cli(["--report-dir", str(reports), "pull", str(dest)]) == 0
    first = (reports / "job-exp.md").read_bytes()
    assert cli(["--report-dir", str(reports), "pull", str(dest)]) == 0  # pulling twice changes nothing
    assert (reports / "job-exp.md").read_bytes() == first
    report = first.decode()
    [title] = sections(report)
    assert "`trip`" in title and "`Success`" in title
    assert "[Run Logs](https://huggingface.co/jobs/acme/6928c0ffee)" in report
    assert "| mmlu |" in report and "| eval\\_loss |" in report
    [saved] = state(reports, "job-exp")
    assert saved["status"] == "Success"
    evals = list((reports / ".trl-reporter" / "job-exp" / "evals" / "trip").glob("*.json"))
    assert len(evals) == 1


def test_pull_keeps_local_runs_takes_newer_state_and_never_older(
    project: Path, tiny_model: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    train(tiny_model, [ReportCallback("exp", publish=remote)], run_name="shared-run")
    train(tiny_model, [ReportCallback("exp")], run_name="local-only")
    reports = project / "training_reports"
    # An older copy of the shared run (fewer revisions) never replaces the newer one.
    run_file = remote / ".trl-reporter" / "exp" / "runs" / "shared-run.json"
    older = json.loads(run_file.read_text())
    older["revision"], older["status"] = 1, "In Progress"
    run_file.write_text(json.dumps(older))
    assert cli(["pull", str(remote)]) == 0
    runs = {r["key"]: r for r in state(reports)}
    assert set(runs) == {"shared-run", "local-only"} and runs["shared-run"]["status"] == "Success"
    # A newer one (an evaluation added remotely, a later revision) wins.
    newer = dict(older, revision=999, status="Success", final_loss=0.123)
    run_file.write_text(json.dumps(newer))
    assert cli(["pull", str(remote)]) == 0
    assert {r["key"]: r for r in state(reports)}["shared-run"]["final_loss"] == 0.123


def test_pull_treats_the_source_as_untrusted(project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    remote = tmp_path / "remote"
    runs = remote / ".trl-reporter" / "exp" / "runs"
    runs.mkdir(parents=True)
    (remote / ".trl-reporter" / "exp" / "experiment.json").write_text('{"schema": 2, "name": "exp"}')
    good = {"schema": 2, "key": "ok", "run_name": "ok", "experiment": "exp", "started_at": 1.7e9}
    (runs / "ok.json").write_text(json.dumps(good))
    (runs / "escape.json").write_text(json.dumps(dict(good, key="../../escape")))
    (runs / "bad.json").write_text(json.dumps(dict(good, key="bad", started_at="soon")))
    (runs / "link.json").symlink_to("/etc/passwd")
    evals = remote / ".trl-reporter" / "exp" / "evals" / "ok"
    evals.mkdir(parents=True)
    (evals / "0001.json").write_text('{"evaluations": [{"benchmark": "x", "score": 1.0}]}')
    (evals / "0002.json").write_text('{"evaluations": [{"benchmark": "x", "score": "{{ 7*7 }}" }]}')
    (remote / "exp.md").write_text("{{ lipsum() }} not a report")
    (remote / "templates").mkdir()
    with caplog.at_level(logging.WARNING):
        assert cli(["pull", str(remote)]) == 0
    reports = project / "training_reports"
    assert [r["key"] for r in state(reports)] == ["ok"]
    assert not (tmp_path / "escape.json").exists() and not (project / "escape.json").exists()
    report = (reports / "exp.md").read_text()
    assert "not a report" not in report and "`ok`" in report
    assert "{{ 7\\*7 }}" in report or "{{ 7*7 }}" not in report  # shown as text, never evaluated
    assert "49" not in report.split("## Experiment Evaluations")[-1]
    assert any("bad.json" in r.getMessage() for r in caplog.records)


def test_pull_watch_waits_for_a_job_that_has_not_published_yet_and_follows_it_to_the_end(
    tmp_path: Path, tiny_model: Path
) -> None:
    dest = tmp_path / "volume"
    laptop = tmp_path / "laptop" / "training_reports"
    # The watch starts first, as right after launching a Job: nothing is published yet.
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trl_reporter",
            "--report-dir",
            str(laptop),
            "pull",
            "--watch",
            "--every",
            "0.5",
            str(dest),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    time.sleep(1.5)
    assert watcher.poll() is None  # still waiting
    job = job_at_step(tmp_path, tiny_model, "watched", dest, at=2, steps=10)
    out, err = watcher.communicate(timeout=120)
    job.communicate(timeout=60)
    assert watcher.returncode == 0, err[-2000:]
    assert "following watched (In Progress" in err
    [title] = sections((laptop / "job-exp.md").read_text())
    assert "`Success`" in title


# -- inside a Job, with no destination ---------------------------------------------------------------


def test_inside_a_job_without_a_destination_the_report_and_the_start_line_warn(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOB_ID", "job-x")
    train(tiny_model, [ReportCallback("exp")], run_name="lonely")
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("* trl-reporter:")]
    assert "deleted when the Job ends" in line and "publish=" in line
    report = (project / "training_reports" / "exp.md").read_text()
    assert "**Not published:**" in report and "hf://buckets/" in report
    # Its Trackio run is local too, and lost with the container: the report names the fix.
    assert "trackio_space_id" in report


def test_zero_config_in_a_job_with_push_to_hub_goes_to_output_dir_and_leaves_its_readme_alone(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, fake_hub: fakehub.FakeHub
) -> None:
    monkeypatch.setenv("JOB_ID", "job-z")
    out = project / "out"
    out.mkdir()
    (out / "README.md").write_text("the model card\n")
    trainer = train(
        tiny_model,
        [ReportCallback("exp")],
        run_name="pushed",
        output_dir=str(out),
        push_to_hub=True,
        hub_model_id="alice/tiny",
        report_to="none",
    )
    report = (out / "training_reports" / "exp.md").read_text()
    assert "`Success`" in sections(report)[0]
    assert "alice/tiny (in output\\_dir/training\\_reports" in report or "alice/tiny (in output_dir" in report
    # The logs link comes from hub_model_id's namespace, with no request for it.
    assert "[Run Logs](" in report and "/jobs/alice/job-z)" in report
    assert not any(r.kind == "job" for r in fake_hub.requests), [r.path for r in fake_hub.requests]
    trainer.push_to_hub()
    pushed = fake_hub.files("model", "alice/tiny")
    assert "training_reports/exp.md" in pushed and "`Success`" in pushed["training_reports/exp.md"].decode()
    assert "training_reports/.trl-reporter/exp/runs/pushed.json" in pushed
    assert pushed.get("README.md", b"") != b"" and (out / "README.md").read_text() != ""


# -- a Hub repo -------------------------------------------------------------------------------------


def test_a_hub_dataset_repo_receives_the_report_in_few_commits(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub
) -> None:
    train(
        tiny_model,
        [ReportCallback("exp", publish="hf://datasets/alice/reports/team")],
        run_name="hub-run",
        eval_dataset=None,
    )
    files = fake_hub.files(*DATASET)
    assert "`Success`" in files["team/exp.md"].decode()
    assert {"team/exp/loss.svg", "team/exp/runs/hub-run.svg", "team/.trl-reporter/exp/runs/hub-run.json"} <= set(files)
    assert not any(".lock" in p or ".generation" in p or ".rendered" in p for p in files)
    assert json.loads(files["team/.trl-reporter/exp/runs/hub-run.json"])["status"] == "Success"
    # Start and end: the repo was created (private) on the first commit, and not buried in commits.
    assert 1 <= len(fake_hub.commits(*DATASET)) <= 3
    assert all(r.auth for r in fake_hub.requests if r.kind in ("commit", "preupload", "tree", "create"))


def test_a_long_run_makes_at_most_one_hub_commit_per_5_minutes_besides_status_changes(
    tmp_path: Path, fake_hub: fakehub.FakeHub
) -> None:
    from trl_reporter.records import RunRecord
    from trl_reporter.store import ExperimentStore
    from trl_reporter.template import renderer

    store = ExperimentStore(tmp_path / "reports", "exp")
    record = RunRecord(key="long", run_name="long", experiment="exp", started_at=time.time(), run_id="a" * 32)
    store.save_run(record)
    clock = [0.0]
    publisher = publish.Publisher(
        store,
        renderer(),
        Target(parse("hf://datasets/alice/reports")),
        lambda: "long",
        clock=lambda: clock[0],
    )
    publisher.notify("start")
    for minute in range(1, 61):  # an hour: a heartbeat a minute, an evaluation every 10
        clock[0] = minute * 60.0
        record.steps_done = minute
        store.save_run(record)
        publisher.notify("heartbeat")
        if minute % 10 == 0:
            publisher.notify("evaluation")
        time.sleep(0.02)
    assert publisher.finish(20)
    commits = len(fake_hub.commits(*DATASET))
    assert commits <= 1 + 60 // 5 + 1, commits
    assert json.loads(fake_hub.files(*DATASET)[".trl-reporter/exp/runs/long.json"])["steps_done"] == 60


def test_hub_errors_are_retried_and_the_commit_lands(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub
) -> None:
    fake_hub.inject("commit", 409, 429, 500, 503)
    train(tiny_model, [ReportCallback("exp", publish="hf://datasets/alice/reports")], run_name="retried")
    assert "`Success`" in fake_hub.files(*DATASET)["exp.md"].decode()
    assert sum(r.kind == "commit" for r in fake_hub.requests) >= 5


def test_a_hanging_hub_costs_training_nothing_and_the_final_push_gives_up_at_its_deadline(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(publish, "FINAL_DEADLINE", 3.0)
    fake_hub.hang_all = True
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        train(tiny_model, [ReportCallback("exp", publish="hf://datasets/alice/reports")], run_name="hung", max_steps=8)
    took = time.monotonic() - started
    assert took < 3.0 + 15, took  # training itself takes a few seconds; the wait is the deadline
    assert any("could not publish the final report" in r.getMessage() for r in caplog.records)
    local = (project / "training_reports" / "exp.md").read_text()
    assert "`Success`" in sections(local)[0]  # the local report is whole


@pytest.mark.parametrize("why", ["offline", "no token"])
def test_no_request_at_all_when_offline_or_without_a_token(
    why: str, project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from huggingface_hub import constants

    if why == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setenv("HF_HOME", str(project / "no-home"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(project / "no-home" / "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(project / "no-home" / "stored_tokens"))
    monkeypatch.setenv("JOB_ID", "job-o")  # the owner lookup must not ask either
    with caplog.at_level(logging.WARNING):
        train(tiny_model, [ReportCallback("exp", publish="hf://datasets/alice/reports")], run_name="quiet")
    time.sleep(0.5)
    assert fake_hub.requests == []
    warnings = [r.getMessage() for r in caplog.records if "not publishing" in r.getMessage()]
    assert len(warnings) == 1
    assert "`Success`" in (project / "training_reports" / "exp.md").read_text()


def test_the_job_owner_is_found_with_whoami_and_inspect_job(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add_job("acme", "job-org")  # an org's job: alice's namespace answers 404
    monkeypatch.setenv("JOB_ID", "job-org")

    from transformers import TrainerCallback

    class Pause(TrainerCallback):  # give the background lookup a moment before the run ends
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(0.2)

    train(tiny_model, [ReportCallback("exp"), Pause()], run_name="org-job")
    report = (project / "training_reports" / "exp.md").read_text()
    assert "[Run Logs](" + fake_hub.url + "/jobs/acme/job-org)" in report
    asked = [r.path for r in fake_hub.requests if r.kind == "job"]
    assert asked[:2] == ["/api/jobs/alice/job-org", "/api/jobs/acme/job-org"]


def test_pull_from_a_hub_repo_and_from_a_bucket(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, tmp_path: Path
) -> None:
    train(
        tiny_model,
        [ReportCallback("exp", report_dir=tmp_path / "job", publish="hf://datasets/alice/reports")],
        run_name="from-hub",
    )
    # A path in the listing that climbs out is never fetched.
    fake_hub.put_file(*DATASET, ".trl-reporter/exp/runs/../../../evil.json", b"{}")
    assert cli(["pull", "hf://datasets/alice/reports"]) == 0
    reports = project / "training_reports"
    assert [r["key"] for r in state(reports)] == ["from-hub"]
    assert not list(project.rglob("evil.json"))
    # The same state in a bucket, read over plain HTTP.
    for rel, data in fake_hub.files(*DATASET).items():
        fake_hub.put_bucket_file("alice/b", f"r/{rel}", data)
    other = tmp_path / "other" / "training_reports"
    assert cli(["--report-dir", str(other), "pull", "hf://buckets/alice/b/r", "exp"]) == 0
    assert "`Success`" in sections((other / "exp.md").read_text())[0]


def test_only_rank_0_publishes(project: Path, tiny_model: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    callback = ReportCallback("exp", publish=tmp_path / "dest")
    args = SimpleNamespace(report_to=[], output_dir="o")
    not_zero = SimpleNamespace(is_world_process_zero=False, global_step=0, max_steps=5)
    callback.on_train_begin(args, not_zero, None)
    callback.on_train_end(args, not_zero, None)
    assert callback.session is None and not (tmp_path / "dest").exists()


def test_a_final_push_that_fails_is_said_once_and_reported_as_not_done(
    tmp_path: Path, fake_hub: fakehub.FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    from trl_reporter.records import RunRecord
    from trl_reporter.store import ExperimentStore
    from trl_reporter.template import renderer

    store = ExperimentStore(tmp_path / "reports", "exp")
    store.save_run(RunRecord(key="r", run_name="r", experiment="exp", started_at=time.time(), run_id="d" * 32))
    publisher = publish.Publisher(store, renderer(), Target(parse("hf://datasets/alice/reports")), lambda: "r")
    with caplog.at_level(logging.WARNING):
        publisher.notify("start")
        time.sleep(1)  # the start lands
        fake_hub.inject("commit", 403)  # not retried
        store.save_run(store.load_run("r"))  # type: ignore[arg-type]
        assert publisher.finish(5) is False
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "trl-reporter" in m] == [m for m in said if "could not publish the final report" in m]
    assert len(said) == 1 and "403" in said[0], said


def test_a_hanging_hub_never_holds_up_a_directory(tmp_path: Path, fake_hub: fakehub.FakeHub) -> None:
    from trl_reporter.records import RunRecord, Status
    from trl_reporter.store import ExperimentStore
    from trl_reporter.template import renderer

    store = ExperimentStore(tmp_path / "reports", "exp")
    record = RunRecord(key="r", run_name="r", experiment="exp", started_at=time.time(), run_id="e" * 32)
    record.finish(Status.SUCCESS, at=time.time())
    store.save_run(record)
    fake_hub.hang_all = True
    hub = publish.Publisher(store, renderer(), Target(parse("hf://datasets/alice/reports")), lambda: "r")
    folder = publish.Publisher(store, renderer(), Target(parse(str(tmp_path / "dir"))), lambda: "r")
    started = time.monotonic()
    assert publish.finish_all([hub, folder], 2.0) is False
    assert time.monotonic() - started < 4
    assert state(tmp_path / "dir")[0]["status"] == "Success"


def test_a_run_deleted_from_the_hub_is_not_brought_back_by_a_later_push(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, tmp_path: Path
) -> None:
    spec = "hf://datasets/alice/reports"
    train(tiny_model, [ReportCallback("exp", report_dir=tmp_path / "job-1", publish=spec)], run_name="bad-run")
    callback = ReportCallback("exp", report_dir=tmp_path / "job-2", publish=spec)

    from transformers import TrainerCallback

    class DeleteMidway(TrainerCallback):  # the user deletes the bad run while job 2 trains
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                fake_hub._repos[DATASET].pop(".trl-reporter/exp/runs/bad-run.json")

    train(tiny_model, [callback, DeleteMidway()], run_name="good-run")
    runs = [p for p in fake_hub.files(*DATASET) if "/runs/" in p and p.endswith(".json")]
    assert runs == [".trl-reporter/exp/runs/good-run.json"]


def test_two_jobs_with_the_same_run_name_into_one_hub_repo_are_both_kept(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, tmp_path: Path
) -> None:
    for job in ("1", "2"):
        callback = ReportCallback("exp", report_dir=tmp_path / f"job-{job}", publish="hf://datasets/alice/reports")
        train(tiny_model, [callback], run_name="same")
    files = fake_hub.files(*DATASET)
    runs = sorted(p for p in files if "/runs/" in p and p.endswith(".json"))
    assert runs == [".trl-reporter/exp/runs/same-2.json", ".trl-reporter/exp/runs/same.json"]
    assert len(sections(files["exp.md"].decode())) == 2


def test_a_failed_copy_leaves_no_empty_claimed_file(tmp_path: Path) -> None:
    from trl_reporter.merge import merge_experiment
    from trl_reporter.records import RunRecord
    from trl_reporter.store import ExperimentStore

    source = ExperimentStore(tmp_path / "a", "exp")
    source.save_run(RunRecord(key="r", run_name="r", experiment="exp", started_at=1.7e9, run_id="f" * 32))
    from trl_reporter.history import History

    history = History()
    history.add("loss", 1, 2.0)
    source.save_run(source.load_run("r"), history)  # type: ignore[arg-type]
    target = ExperimentStore(tmp_path / "b", "exp")
    (target.state_dir / "history").write_text("not a folder")  # every copy with a history fails
    for _ in range(3):
        with pytest.raises(OSError):
            merge_experiment(source, target)
    assert list(target.runs_dir.glob("*.json")) == []


def test_inside_a_job_a_directory_that_is_not_mounted_is_not_written(
    project: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOB_ID", "job-m")
    missing = project / "data-not-mounted" / "training_reports"
    with caplog.at_level(logging.WARNING):
        train(tiny_model, [ReportCallback("exp", publish=missing)], run_name="unmounted")
    assert not missing.parent.exists()
    assert any("is the bucket mounted?" in r.getMessage() for r in caplog.records)
    assert "**Not published:**" in (project / "training_reports" / "exp.md").read_text()


def test_sigterm_mid_training_leaves_the_failure_on_the_hub_within_its_grace(
    tmp_path: Path, tiny_model: Path, fake_hub: fakehub.FakeHub
) -> None:
    proc = job_at_step(
        tmp_path, tiny_model, "cancelled", "hf://datasets/alice/reports", at=3, steps=40, **fake_hub.env()
    )
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err[-2000:]
    assert time.monotonic() - signalled < 10 + 5  # the final push has 10 s after SIGTERM
    saved = json.loads(fake_hub.files(*DATASET)[".trl-reporter/job-exp/runs/cancelled.json"])
    assert saved["status"] == "Failure" and saved["failure"]["signal"] == "SIGTERM"
    assert "terminated by SIGTERM" in fake_hub.files(*DATASET)["job-exp.md"].decode()


def test_pull_says_when_a_source_holds_no_report_and_watch_ends_on_a_finished_one(
    project: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["pull", str(empty)]) == 2
    assert "no trl-reporter state" in capsys.readouterr().err
    done = tmp_path / "done"
    train(tiny_model, [ReportCallback("exp", report_dir=tmp_path / "job", publish=done)], run_name="over")
    started = time.monotonic()
    assert cli(["pull", "--watch", "--every", "5", str(done)]) == 0  # every run there has ended
    assert time.monotonic() - started < 5


def test_a_score_added_with_the_cli_is_published_where_the_environment_says(
    project: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "volume"
    train(tiny_model, [ReportCallback("exp", publish=dest)], run_name="scored")
    monkeypatch.setenv("TRL_REPORTER_PUBLISH", str(dest))
    assert cli(["add-eval", "exp", "scored", "--benchmark", "gsm8k", "--score", "0.25"]) == 0
    assert "| gsm8k |" in (dest / "exp.md").read_text()
    assert len(list((dest / ".trl-reporter" / "exp" / "evals" / "scored").glob("*.json"))) == 1


def test_a_job_owner_found_just_after_training_ends_is_still_linked(
    project: Path, tiny_model: Path, fake_hub: fakehub.FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add_job("alice", "job-late")
    answer = threading.Event()
    fake_hub.inject("whoami", answer)  # held until half a second after training ended

    class EndsTraining(TrainerCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            threading.Timer(0.5, answer.set).start()  # just before the reporter's own on_train_end

    monkeypatch.setenv("JOB_ID", "job-late")
    train(tiny_model, [EndsTraining(), ReportCallback("exp", trackio=False)], run_name="late")
    report = (project / "training_reports" / "exp.md").read_text()
    assert "[Run Logs](" + fake_hub.url + "/jobs/alice/job-late)" in report
