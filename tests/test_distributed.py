"""torchrun with 2 ranks on CPU: exactly one run, written by rank 0; a failing rank is Failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import FakeHub
from helpers import SCRIPTS, build_model_once, only_report, reached, run_states, run_titles

# torchrun picks a free port itself (--standalone): a port chosen here could be taken before it binds.
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--nproc_per_node=2",
    "--standalone",
    str(SCRIPTS / "ddp.py"),
]


def torchrun(mode: str, project: Path, model: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra_env)
    return subprocess.run(
        [*TORCHRUN, mode, str(model)], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def built_model(tiny_model: Path) -> Path:
    return build_model_once(tiny_model)


def test_two_ranks_write_and_publish_exactly_one_run_from_rank_zero(project: Path, built_model: Path) -> None:
    with FakeHub() as hub:
        proc = torchrun("ok", project, built_model, TRL_REPORTER_PUBLISH="hf://datasets/alice/ddp", **hub.env())
        published = hub.files("dataset", "alice/ddp")

    assert proc.returncode == 0, proc.stderr[-3000:]
    [state] = run_states(project)
    assert (state["run_name"], state["status"]) == ("ddp-ok", "Success")
    # The command is torchrun's, as launched: the workers' own argv would not reproduce the run.
    assert state["provenance"]["command"][1:5] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    assert "| Effective Batch Size | 8 (4 × 1 × 2 devices) |" in only_report(project)
    # Rank 1 published nothing: a second publisher would have added a second run there.
    assert [p for p in published if "/runs/" in p and p.endswith(".json")] == [".trl-reporter/ddp/runs/ddp-ok.json"]
    assert json.loads(published[".trl-reporter/ddp/runs/ddp-ok.json"])["status"] == "Success"


def test_a_failing_rank_gives_failure(project: Path, built_model: Path) -> None:
    proc = torchrun("fail", project, built_model)

    assert proc.returncode != 0
    [state] = run_states(project)
    assert state["status"] == "Failure", state
    [(_, _, status)] = run_titles(only_report(project))
    assert status == "Failure"


def test_a_distributed_training_stopped_and_resumed_is_one_run(project: Path, built_model: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(
        [*TORCHRUN, "save", str(built_model)], cwd=project, env=env, stdout=subprocess.PIPE, text=True
    )
    assert reached(first, "SAVED 4")
    first.send_signal(signal.SIGTERM)  # a preemption: torchrun passes it to every rank
    first.communicate(timeout=120)
    [state] = run_states(project)
    assert state["status"] == "Failure"

    second = torchrun("resume", project, built_model)
    assert second.returncode == 0, second.stderr[-3000:]
    [final] = run_states(project)  # rank 0 alone wrote, and the same run went on
    assert (final["run_name"], final["status"], final["run_id"]) == ("ddp-requeue", "Success", state["run_id"])
    assert len(final["resumed"]) == 1 and final["resumed"][0]["ended"] == "signal"
    assert [t[2] for t in run_titles(only_report(project))] == ["Success"]
