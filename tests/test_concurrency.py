"""Several processes training into one experiment at once lose nothing and duplicate nothing;
a held lock never blocks training for long."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import filelock
from helpers import SCRIPTS, only_report, run_states, run_titles, train

from trl_reporter import ReportCallback
from trl_reporter.store import ExperimentStore


def table_rows_have_header_width(report: str) -> bool:
    width = None
    for line in report.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if width is None:
            width = cells
        elif cells != width:
            return False
    return True


def test_four_processes_times_five_runs_all_land_once(project: Path, tiny_model: Path) -> None:
    env = dict(os.environ)
    workers = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / "many_runs.py"), str(w), "5", str(tiny_model), "shared"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "DONE" in out, err[-3000:]

    states = run_states(project)
    assert len(states) == 20
    assert len({s["run_name"] for s in states}) == 20
    assert all(s["status"] == "Success" for s in states)
    report = only_report(project)
    titles = run_titles(report)
    assert len(titles) == 20 and len(set(titles)) == 20
    assert {t[0] for t in titles} == {s["run_name"] for s in states}
    assert table_rows_have_header_width(report)


def test_a_held_lock_delays_training_boundedly_and_the_next_writer_renders(project: Path, tiny_model: Path) -> None:
    store = ExperimentStore(project / "training_reports", "locked")
    with filelock.FileLock(store.lock_path, timeout=1):
        start = time.monotonic()
        trainer = train(tiny_model, [ReportCallback("locked", trackio=False)], run_name="while-locked")
        held = time.monotonic() - start

    assert trainer.state.global_step == 6
    assert held < 30  # begin (2 s) and end (5 s) waits at most, plus the training itself
    [state] = run_states(project)
    assert state["status"] == "Success"  # the run's own state is saved without the lock
    assert not store.report_path.exists()

    train(tiny_model, [ReportCallback("locked", trackio=False)], run_name="after")
    assert [(n, s) for n, _, s in run_titles(only_report(project))] == [
        ("while-locked", "Success"),
        ("after", "Success"),
    ]
