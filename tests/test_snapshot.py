"""Rendering from cached facts and parts gives the report a full render gives, whatever changed
behind the caches: files replaced by git, scores added by another process, a run deleted, a cache
torn or edited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trl_reporter import sections, snapshot
from trl_reporter.history import History
from trl_reporter.records import Evaluation, Link, RunRecord, Source, Status
from trl_reporter.store import ExperimentStore
from trl_reporter.template import default_template_path, renderer

T0 = 1_764_250_000.0


def _run(store: ExperimentStore, i: int, lr: float = 1e-5, **fields: object) -> RunRecord:
    record = RunRecord(
        key=f"run-{i}",
        run_name=f"run-{i}",
        experiment=store.experiment,
        started_at=T0 + 60 * i,
        base_model=Link("Qwen/Qwen2.5-0.5B", "https://huggingface.co/Qwen/Qwen2.5-0.5B"),
        parameters=[("learning_rate", lr), ("seed", 42)],
        **fields,  # type: ignore[arg-type]
    )
    record.finish(Status.SUCCESS, at=T0 + 60 * i + 30, steps_done=10)
    record.set_metric("eval_loss", 2.0 - i / 10, step=10, job_link=None)
    curves = History()
    for step in range(1, 11):
        curves.add("loss", step, 3.0 - step / 10 - i / 100)
    record.curves, record.trend = curves.names(), curves.trend()
    store.save_run(record, curves)
    return record


def _experiment(root: Path, runs: int = 4) -> ExperimentStore:
    store = ExperimentStore(root, "exp")
    for i in range(runs):
        _run(store, i, lr=[1e-5, 2e-5][i % 2])
    return store


def _cached(store: ExperimentStore) -> str:
    assert store.render(renderer(), timeout=5)
    return store.report_path.read_text()


def _full(store: ExperimentStore) -> str:
    """What a render that trusts no cache writes: every file read again."""
    sections.forget()
    snapshot._MEMORY.clear()
    assert store.render(renderer(), timeout=5, full=True)
    return store.report_path.read_text()


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    store = _experiment(tmp_path / "training_reports")
    _cached(store)  # the caches are warm
    return store


def test_a_run_changed_in_the_middle_changes_its_neighbours_marks(store: ExperimentStore) -> None:
    _run(store, 1, lr=9e-5)  # run-2 compares with run-1: its "was" changes
    cached = _cached(store)
    assert "| Learning Rate | **1e-05** (was 9e-05) |" in cached
    assert cached == _full(store)


def test_scores_added_by_another_process_show(store: ExperimentStore, tmp_path: Path) -> None:
    code = (
        "import sys; from trl_reporter import add_evaluation; "
        "add_evaluation('exp', 'run-2', 'mmlu/acc', 0.7, report_dir=sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(store.root)], check=True)
    store.add_evaluations("run-3", [Evaluation("mmlu/acc", 0.5, source=Source.API)])  # and one here
    cached = _cached(store)
    assert "| mmlu/acc | **0.7000** (best, higher is better) |" in cached and "| mmlu/acc | 0.5000 |" in cached
    assert cached == _full(store)


def test_files_replaced_behind_the_cache_are_read_again(store: ExperimentStore) -> None:
    # What a git checkout does: new files with new content (here, one of the same size).
    path = store.run_path("run-3")
    data = json.loads(path.read_text())
    data["run_name"] = "run-X"  # same length as run-3
    stat = path.stat()
    path.unlink()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the same time
    cached = _cached(store)
    assert "### `run-X`" in cached and cached == _full(store)


def test_a_deleted_run_leaves_the_report_and_its_chart(store: ExperimentStore) -> None:
    store.run_path("run-3").unlink()
    cached = _cached(store)
    assert "run-3" not in cached and not (store.chart_dir / "runs" / "run-3.svg").exists()
    assert cached == _full(store)


def test_a_torn_or_edited_cache_is_ignored(store: ExperimentStore) -> None:
    cache = sections.cache_dir_for(store.state_dir)
    sections.forget()
    snapshot._MEMORY.clear()
    facts = cache / "facts.json"
    facts.write_text(facts.read_text().replace('"run-1"', '"run-9"')[:-40])  # edited and torn
    (cache / "parts.pack").write_bytes((cache / "parts.pack").read_bytes()[:-100])
    _run(store, 0, lr=3e-5)
    cached = _cached(store)
    assert "run-9" not in cached and "| Learning Rate | **2e-05** (was 3e-05) |" in cached
    assert cached == _full(store)


def test_the_caches_live_outside_the_report_folder(store: ExperimentStore) -> None:
    cache = sections.cache_dir_for(store.state_dir)
    assert {p.name for p in cache.iterdir()} >= {"facts.json", "charts.json"}
    assert store.root not in cache.parents
    assert not [p for p in store.root.rglob("*") if p.name in ("facts.json", "parts.pack", "charts.json")]


def test_a_staleness_that_grows_is_rendered_again(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    quiet = RunRecord(key="quiet", run_name="quiet", experiment="exp", started_at=T0)
    store.save_run(quiet)
    loud = _run(store, 1)
    first = _cached(store)
    loud.heartbeat_at = T0 + 7200  # another run was heard from much later
    store.save_run(loud)
    later = _cached(store)
    assert "**Stale**" in later and later != first and later == _full(store)


def test_a_template_edited_while_the_process_runs_is_used(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    packaged = default_template_path().parent
    for name in ("report.md.j2", "run.md.j2"):
        (folder / name).write_text((packaged / name).read_text())
    store = _experiment(tmp_path / "training_reports")
    render = renderer(folder / "report.md.j2")
    assert store.render(render, timeout=5)
    run_template = folder / "run.md.j2"
    run_template.write_text(run_template.read_text().replace("#### Training Parameters", "#### Parameters (edited)"))
    _run(store, 0, lr=4e-5)  # a change, so that the report is rendered again
    assert store.render(renderer(folder / "report.md.j2"), timeout=5)
    assert store.report_path.read_text().count("#### Parameters (edited)") == 4


def test_a_run_changed_twice_within_a_coarse_clock_tick_shows_its_second_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem with 1-second times, two writes in one second can leave the same identity
    (same size, and an inode number freed by one atomic write reused by a later one): such a file
    is never trusted (git's racily-clean rule), so its second change still shows."""
    import re

    real = snapshot._identities

    def blur(identity: str) -> str:  # whole seconds, and the inode number reused
        seconds = re.sub(r"\d{9}(?=[./]|$)", "000000000", identity)
        return re.sub(r"^(\d+\.\d+\.\d+)\.\d+/", r"\1.1/", seconds)

    def coarse(runs_dir: Path, evals_dir: Path) -> dict[str, tuple[str, bool]]:
        return {k: (blur(v), racy) for k, (v, racy) in real(runs_dir, evals_dir).items()}

    monkeypatch.setattr(snapshot, "_identities", coarse)
    store = _experiment(tmp_path / "training_reports")
    record = _run(store, 1, lr=2e-5, changed_arguments=[("logging_steps", "25")])
    assert "| logging\\_steps | 25 |" in _cached(store)
    record.changed_arguments = [("logging_steps", "26")]  # same size, same second
    store.save_run(record)
    cached = _cached(store)
    assert "| logging\\_steps | 26 |" in cached and cached == _full(store)
