"""The large variants of the reliability scenarios, with the figures that prove them.

    python bench/reliability.py [--quick] [--only NAME ...]

Every scenario runs for real: tiny real training runs in real subprocesses, real signals, real
SIGKILLs, real torchrun, a real IPython kernel. The script prints one table (scenario, trials,
passes, figure) and exits non-zero if any scenario missed its target. ``--quick`` uses the small
trial counts of the test suite, to check the harness itself.

The environment is made offline and throwaway before anything from Hugging Face is imported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SCRIPTS = TESTS / "scripts"
HOME = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HOME=str(HOME / "hf"),
    TRACKIO_DIR=str(HOME / "trackio"),
    TOKENIZERS_PARALLELISM="false",
    PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(TESTS)]),  # this checkout, installed or not
)
for _var in ("JOB_ID", "TRL_REPORTER_EXPERIMENT", "TRL_REPORTER_DIR", "TRL_REPORTER_JOB_OWNER"):
    os.environ.pop(_var, None)
sys.path.insert(0, str(TESTS))


@dataclass
class Result:
    scenario: str
    trials: int
    passes: int
    figure: str

    @property
    def ok(self) -> bool:
        return self.trials > 0 and self.passes == self.trials


def project(name: str) -> Path:
    root = HOME / "projects" / name
    (root / ".git").mkdir(parents=True, exist_ok=True)
    return root


def states(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "training_reports").glob(".trl-reporter/*/runs/*.json"))]


def script(name: str, *args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def model() -> Path:
    from helpers import build_model_once

    return build_model_once(HOME / "tiny-model")


# -- scenarios ----------------------------------------------------------------------------------


def concurrent_writers(workers: int, runs: int) -> Result:
    from test_concurrency import table_rows_have_header_width

    root = project(f"concurrent-{workers}x{runs}")
    procs = [script("many_runs.py", str(w), str(runs), str(model()), "shared", cwd=root) for w in range(workers)]
    for proc in procs:
        proc.communicate(timeout=3600)
    found = states(root)
    names = [s["run_name"] for s in found]
    report = next((root / "training_reports").glob("*.md")).read_text()
    from helpers import run_titles

    titles = run_titles(report)
    expected = workers * runs
    lost = expected - len(set(names))
    duplicated = len(names) - len(set(names)) + len(titles) - len(set(titles))
    rows_ok = table_rows_have_header_width(report)
    passes = expected - lost - duplicated if rows_ok and len(titles) == expected else 0
    return Result(
        f"{workers} processes x {runs} runs, one experiment",
        expected,
        passes,
        f"runs lost {lost}, duplicated {duplicated}, rows with the header's width: {'all' if rows_ok else 'NOT all'}",
    )


def sigkill_while_writing(trials: int) -> Result:
    from test_crash_safety import report_is_whole, temp_files

    from trl_reporter.store import ExperimentStore

    root = HOME / "sigkill" / "training_reports"
    rng = random.Random(7)
    whole = 0
    leftovers_seen = 0
    for trial in range(trials):
        proc = script("writer.py", str(root), "killed", f"run-{trial % 7}", cwd=HOME)
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        time.sleep(rng.uniform(0, 0.05))
        proc.kill()
        proc.wait()
        store = ExperimentStore(root, "killed", create=False)
        try:
            ok = report_is_whole(store.report_path.read_text()) and all(
                isinstance(json.loads(p.read_text()), dict) for p in store.runs_dir.glob("*.json")
            )
        except (OSError, ValueError):
            ok = False
        whole += ok
        leftovers_seen += len(temp_files(root))
    ExperimentStore(root, "killed").clean_debris()
    left = len(temp_files(root))
    return Result(
        "SIGKILL at random moments while writing",
        trials,
        whole if left == 0 else 0,
        f"{trials - whole} unparseable reports; {leftovers_seen} temp files seen between kills, {left} after the next start",
    )


def sigterm_at_random_step(trials: int) -> Result:
    rng = random.Random(11)
    passes, latencies = 0, []
    for trial in range(trials):
        root = project(f"sigterm-{trial}")
        delay = rng.uniform(0.0, 2.0)  # the script slows to 0.25 s a step after step 3: lands on steps 3 to 11
        proc = script("signals.py", "default", str(model()), cwd=root, env=dict(os.environ, STEPS="40"))
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("AT STEP 3"):
                time.sleep(delay)
                sent = time.time()
                proc.send_signal(signal.SIGTERM)
                break
        proc.communicate(timeout=120)
        found = states(root)
        ok = (
            proc.returncode == -signal.SIGTERM
            and len(found) == 1
            and found[0]["status"] == "Failure"
            and found[0]["failure"]["signal"] == "SIGTERM"
        )
        if ok:
            latencies.append(found[0]["ended_at"] - sent)
        passes += ok
    figure = (
        f"Failure on disk before exit in {passes}/{trials}; exit by SIGTERM; signal to recorded failure "
        f"median {1000 * statistics.median(latencies):.1f} ms, max {1000 * max(latencies):.1f} ms"
        if latencies
        else "no trial recorded a failure"
    )
    return Result("SIGTERM at a random step", trials, passes, figure)


def requeue(trainings: int, interruptions: int) -> Result:
    """Preemptible training: each training is SIGTERMed ``interruptions`` times at random steps
    after a checkpoint, and resumed each time by a new process (resume_from_checkpoint=True, no
    run name, Trackio on), as a requeued SLURM job or a relaunched HF Job does."""
    rng = random.Random(12)
    passes, stops = 0, []
    for training in range(trainings):
        root = project(f"requeue-{training}")
        for part in range(interruptions + 1):
            env = dict(os.environ, STEPS="16", **({"RESUME": "1"} if part else {}))
            saved = [int(p.name.split("-")[1]) for p in (root / "out" / "requeue").glob("checkpoint-*")]
            target = min(14, max(saved, default=0) + 2 * rng.randint(1, 2)) if part < interruptions else None
            if target is not None:
                env["SLOW"] = str(target)
            proc = script("requeue.py", str(model()), cwd=root, env=env)
            assert proc.stdout is not None
            for line in proc.stdout if target is not None else ():
                if line.startswith("SAVED ") and int(line.split()[1]) >= target:
                    time.sleep(rng.uniform(0.0, 0.5))  # lands on the step of the checkpoint, or one later
                    proc.send_signal(signal.SIGTERM)
                    stops.append(target)
                    break
            proc.communicate(timeout=240)
        found = states(root)
        passes += (
            len(found) == 1
            and found[0]["status"] == "Success"
            and found[0]["steps_done"] == 16
            and len(found[0]["resumed"]) == interruptions
            and all(r["ended"] == "signal" for r in found[0]["resumed"])
        )
    figure = (
        f"runs shown as one section, ending Success: {passes}/{trainings}, each interrupted {interruptions} "
        f"times by SIGTERM (after checkpoints at steps {min(stops)} to {max(stops)}) and resumed"
    )
    return Result("requeue", trainings, passes, figure)


def previous_handlers(trials: int) -> Result:
    passes, notes = 0, []
    for trial in range(trials):
        root = project(f"previous-{trial}")
        marker = root / "marker"
        proc = script("signals.py", "previous", str(model()), cwd=root, env=dict(os.environ, MARKER=str(marker)))
        _send_at_step_3(proc, signal.SIGTERM)
        ok_prev = proc.returncode == 7 and marker.read_text() == "called\n" and states(root)[0]["status"] == "Failure"
        root = project(f"ignore-{trial}")
        proc = script("signals.py", "ignore", str(model()), cwd=root, env=dict(os.environ, STEPS="6"))
        _send_at_step_3(proc, signal.SIGTERM)
        ok_ign = proc.returncode == 0 and states(root)[0]["status"] == "Success"
        passes += ok_prev and ok_ign
        notes.append((ok_prev, ok_ign))
    thread_ok = _pytest("tests/test_signals.py::test_trainer_in_a_thread_installs_no_signal_handler_and_works")
    return Result(
        "previous SIGTERM handler / SIG_IGN / trainer in a thread",
        trials + 1,
        passes + thread_ok,
        f"previous handler called exactly once with its exit code kept: {sum(p for p, _ in notes)}/{trials}; "
        f"SIG_IGN kept training to Success: {sum(i for _, i in notes)}/{trials}; thread: "
        f"{'no handler, no crash' if thread_ok else 'FAILED'}",
    )


def _send_at_step_3(proc: subprocess.Popen, signum: int) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("AT STEP 3"):
            proc.send_signal(signum)
            break
    proc.communicate(timeout=120)


def _pytest(*targets: str, env: dict[str, str] | None = None) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets],
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
    )
    return int(proc.returncode == 0)


def pytest_counts(*targets: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets],
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    passed = int(last.split(" passed")[0].split()[-1]) if " passed" in last else 0
    failed = int(last.split(" failed")[0].split()[-1]) if " failed" in last else 0
    return passed + failed, passed


def fault_injection() -> Result:
    trials, passes = pytest_counts("tests/test_fault_injection.py")
    return Result(
        "exceptions injected into every internal step",
        trials,
        passes,
        "train() returned with the baseline's final step and loss, <= 1 warning per kind, in "
        f"{passes}/{trials} (detection x3, parameters, render, lock, write, os.replace ENOSPC/EROFS/EACCES, read-only dir)",
    )


def endings() -> Result:
    trials, passes = pytest_counts(
        "tests/test_failures.py",
        "tests/test_signals.py::test_sigint_is_an_interruption_and_the_user_still_sees_keyboardinterrupt",
    )
    return Result(
        "uncaught exception, KeyboardInterrupt, sys.exit(0), caught exception",
        trials,
        passes,
        "Failure with the right reason; the user's traceback and exit status unchanged",
    )


def notebook() -> Result:
    trials, passes = pytest_counts("tests/test_notebook.py")
    return Result(
        "failing cell / caught exception / successful cell (one real kernel)",
        trials,
        passes,
        "Failure / Failure / Success in one notebook run; no error printed by the hook; later cells "
        "unaffected; every hook unregistered",
    )


def hard_kill(trials: int) -> Result:
    passes = 0
    for _ in range(trials):
        passes += _pytest("tests/test_liveness.py::test_sigkilled_run_becomes_failure_at_the_next_start")
    return Result(
        "SIGKILL mid-training, then the next start", trials, passes, "Failure (process vanished) after the next start"
    )


def distributed() -> Result:
    trials, passes = pytest_counts("tests/test_distributed.py")
    return Result(
        "torchrun, 2 ranks on CPU (ok, then a failing rank)",
        trials,
        passes,
        "exactly one run, by rank 0; Failure when a rank fails",
    )


def resume() -> Result:
    trials, passes = pytest_counts(
        "tests/test_callback.py::test_resuming_from_a_checkpoint_continues_the_same_run_section"
    )
    return Result(
        "resume from a checkpoint with the same run name", trials, passes, "one run section, resumption noted"
    )


def properties() -> Result:
    trials, passes = pytest_counts(
        "tests/test_hostile.py", "-k", "rows or html or titles or fences or slug", env={"HYPOTHESIS_PROFILE": "large"}
    )
    return Result(
        f"property tests (hypothesis, {os.environ.get('PROPERTY_EXAMPLES', '5,000')} random examples each)",
        trials,
        passes,
        "two cells per parameter row, no raw HTML, names round-trip, fences never close early, no shared slugs",
    )


def hostile() -> Result:
    from test_hostile import HOSTILE_NAMES, HOSTILE_URLS

    from trl_reporter import markdown as md
    from trl_reporter.records import RunRecord
    from trl_reporter.store import ExperimentStore
    from trl_reporter.template import renderer

    unsafe = sum(
        1 for u in HOSTILE_URLS if (s := md.safe_url(u)) is not None and not s.startswith(("http://", "https://"))
    )
    root = HOME / "hostile" / "training_reports"
    inside = 0
    for name in HOSTILE_NAMES:
        store = ExperimentStore(root, name)
        store.save_run(RunRecord(key="r", run_name=name or "r", experiment=name, started_at=1.0))
        store.render(renderer(), timeout=5)
        inside += store.report_path.resolve().parent == root.resolve()
    escaped = sum(1 for p in root.parent.rglob("*") if not p.resolve().is_relative_to(root.resolve()) and p != root)
    trials = len(HOSTILE_URLS) + len(HOSTILE_NAMES)
    return Result(
        "hostile URLs and experiment names",
        trials,
        (len(HOSTILE_URLS) - unsafe) + inside if escaped == 0 else 0,
        f"{unsafe} unsafe URLs emitted; {inside}/{len(HOSTILE_NAMES)} paths inside the report directory",
    )


def secrets() -> Result:
    trials, passes = pytest_counts("tests/test_hostile.py", "-k", "secrets")
    return Result(
        "secrets corpus",
        trials,
        passes,
        "0 secrets in any written file; look-alikes kept" if passes == trials else "LEAK",
    )


def hostile_state(type_trials: int) -> Result:
    from attacks import path_attacks, template_attacks, type_attacks

    base = HOME / "hostile-state"
    paths, types, templates = path_attacks(base), type_attacks(base, type_trials), template_attacks(base)
    tallies = (paths, types, templates)
    attacks = sum(t.attacks for t in tallies)
    bad = sum(t.escapes + t.code_run + t.frozen for t in tallies)
    return Result(
        "hostile state files (path, type and template attacks)",
        attacks,
        attacks - bad if bad else attacks,
        f"path {paths.attacks}, type {types.attacks}, template {templates.attacks}: "
        f"{sum(t.escapes for t in tallies)} escapes, {sum(t.code_run for t in tallies)} code run, "
        f"{sum(t.frozen for t in tallies)} frozen experiments",
    )


def _faults(
    mode: str, trials: int, interact: Callable[[subprocess.Popen], None] | None = None
) -> list[tuple[Path, int, str]]:
    """Run tests/scripts/faults.py MODE ``trials`` times: two at a time (this machine has 2 cores),
    or one at a time when the parent must act at a moment of each (``interact``)."""
    results = []
    parallel = 1 if interact is not None else 2
    for start in range(0, trials, parallel):
        batch = []
        for trial in range(start, min(start + parallel, trials)):
            report_dir = project(f"{mode}-{trial}") / "training_reports"
            batch.append((report_dir, script("faults.py", mode, str(model()), str(report_dir), cwd=report_dir.parent)))
        for report_dir, proc in batch:
            if interact is not None:
                interact(proc)
            _, err = proc.communicate(timeout=300)
            results.append((report_dir, proc.returncode, err))
    return results


def transient_enospc(trials: int) -> Result:
    from trl_reporter.cli import main as cli_main

    passes = vanished = 0
    for report_dir, code, _ in _faults("enospc-recover", trials):
        cli_main(["--report-dir", str(report_dir), "reconcile"])
        found = states(report_dir.parent)
        report = (report_dir / "disk.md").read_text() if (report_dir / "disk.md").exists() else ""
        ok = code == 0 and len(found) == 1 and found[0]["status"] == "Success" and "`Success`" in report
        vanished += any(s.get("failure") for s in found)
        passes += ok
    return Result(
        "ENOSPC during on_train_end, disk free again by exit",
        trials,
        passes,
        f"Success on disk and in the report after the next command: {passes}/{trials}; marked vanished: {vanished}",
    )


def sigterm_during_render(trials: int) -> Result:
    rng = random.Random(5)

    def sigterm_inside_render(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("RENDERING"):
                time.sleep(rng.uniform(0.0, 2.5))  # anywhere in the 3 s the render holds the lock
                proc.send_signal(signal.SIGTERM)
                break

    passes = behind = 0
    for report_dir, code, _ in _faults("render-signal", trials, sigterm_inside_render):
        found = states(report_dir.parent)
        report = (report_dir / "render.md").read_text() if (report_dir / "render.md").exists() else ""
        on_disk = found[0]["status"] if len(found) == 1 else None
        in_report = "`Failure`" in report.split("####")[0] if report else False
        behind += on_disk == "Failure" and not in_report
        passes += code == -signal.SIGTERM and on_disk == "Failure" and in_report
    return Result(
        "SIGTERM while the process renders its own report",
        trials,
        passes,
        f"reports left behind their state: {behind}; Failure on disk and in the report: {passes}/{trials}; "
        "exit by SIGTERM",
    )


def overhead(steps: int) -> Result:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "overhead.py"), "--steps", str(steps), "--pairs", "5"],
        capture_output=True,
        text=True,
    )
    lines = [line.strip() for line in proc.stdout.splitlines() if line.startswith("  ")]
    ratio_line = next((line for line in lines if line.startswith("reporter alone")), "")
    handler_line = next((line for line in lines if line.startswith("time inside")), "")
    writes_line = next((line for line in lines if line.startswith("writes")), "")
    ratio = float(ratio_line.split("on/off ")[1].split()[0]) if ratio_line else 99.0
    # No per-step I/O: inside the step loop only the heartbeats write (the first logged step, then
    # at most once a minute), each the run's state file and its history.
    during = int(writes_line.split("; ")[-1].split()[0]) if writes_line else 10**9
    train_seconds = float(handler_line.split(" of ")[1].split()[0]) if " of " in handler_line else 0.0
    heartbeats_only = during <= 2 * (1 + math.ceil(train_seconds / 60))
    return Result(
        f"overhead, {steps} steps, on against off",
        1,
        int(ratio <= 1.01 and heartbeats_only),
        f"median wall ratio {ratio:.4f}; {handler_line.split(': ', 1)[-1]}; {writes_line.split(': ', 1)[-1]}",
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the test suite's small trial counts")
    parser.add_argument("--only", nargs="*", default=None, help="run only scenarios whose key contains one of these")
    options = parser.parse_args()
    q = options.quick
    scenarios: dict[str, Callable[[], Result]] = {
        "concurrency": lambda: concurrent_writers(*((4, 5) if q else (16, 50))),
        "sigkill-writes": lambda: sigkill_while_writing(100 if q else 1000),
        "sigterm": lambda: sigterm_at_random_step(3 if q else 20),
        "handlers": lambda: previous_handlers(1 if q else 5),
        "requeue": lambda: requeue(*((1, 2) if q else (5, 3))),
        "injection": fault_injection,
        "endings": endings,
        "notebook": notebook,
        "hard-kill": lambda: hard_kill(1 if q else 5),
        "torchrun": distributed,
        "resume": resume,
        "properties": properties,
        "hostile": hostile,
        "secrets": secrets,
        "hostile-state": lambda: hostile_state(300 if q else 3000),
        "enospc": lambda: transient_enospc(2 if q else 10),
        "render-signal": lambda: sigterm_during_render(2 if q else 10),
        "overhead": lambda: overhead(200 if q else 2000),
    }
    chosen = [k for k in scenarios if options.only is None or any(o in k for o in options.only)]
    results = []
    for key in chosen:
        start = time.monotonic()
        result = scenarios[key]()
        results.append(result)
        print(
            f"[{time.monotonic() - start:6.1f} s] {key}: {result.passes}/{result.trials}", file=sys.stderr, flush=True
        )

    print("| Scenario | Trials | Passes | Figure |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r.scenario} | {r.trials} | {r.passes} | {r.figure} |")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
