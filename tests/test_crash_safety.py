"""A kill at any moment while writing leaves readable files, and the next start cleans up; two
git branches that each add a run merge without conflicts in the state files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import SCRIPTS, run_titles
from markdown_it import MarkdownIt

from trl_reporter.records import RunRecord
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer


def report_is_whole(text: str) -> bool:
    """A complete report: parses, starts with its title, ends with the evaluations section."""
    MarkdownIt("commonmark").enable("table").parse(text)
    return text.startswith("# ") and "## Experiment Evaluations" in text and text.endswith("\n")


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")]


def test_sigkill_while_writing_never_leaves_an_unreadable_report(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    rng = random.Random(1234)
    trials = 100
    for trial in range(trials):
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "writer.py"), str(root), "killed", f"run-{trial % 7}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

        store = ExperimentStore(root, "killed", create=False)
        assert report_is_whole(store.report_path.read_text(encoding="utf-8")), f"trial {trial}"
        for state in store.runs_dir.glob("*.json"):
            json.loads(state.read_text(encoding="utf-8"))

    # The next start removes what the killed writers left behind.
    ExperimentStore(root, "killed").clean_debris()
    assert temp_files(root) == []


def test_two_git_branches_each_adding_a_run_merge_without_conflicts(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e"
    )

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False)

    def add_run(name: str, at: float) -> None:
        store = ExperimentStore(repo / "training_reports", "merged")
        store.save_run(RunRecord(key=name, run_name=name, experiment="merged", started_at=at))
        store.render(renderer(), timeout=5)

    git("init", "-q", "-b", "main")
    add_run("base", 1_700_000_000.0)
    git("add", "-A")
    git("commit", "-qm", "base")
    git("checkout", "-q", "-b", "a")
    add_run("from-a", 1_700_000_100.0)
    git("add", "-A")
    git("commit", "-qm", "a")
    git("checkout", "-q", "main")
    git("checkout", "-q", "-b", "b")
    add_run("from-b", 1_700_000_200.0)
    git("add", "-A")
    git("commit", "-qm", "b")
    merge = git("merge", "--no-edit", "a")

    conflicted = git("diff", "--name-only", "--diff-filter=U").stdout.split()
    assert [p for p in conflicted if "/.trl-reporter/" in "/" + p] == [], merge.stdout + merge.stderr
    store = ExperimentStore(repo / "training_reports", "merged")
    assert sorted(r.run_name for r in store.load_runs()) == ["base", "from-a", "from-b"]
    # The markdown is a view: re-rendering after the merge brings every run back.
    store.render(renderer(), timeout=5)
    assert [t[0] for t in run_titles(store.report_path.read_text())] == ["base", "from-a", "from-b"]
