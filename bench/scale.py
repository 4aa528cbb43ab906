"""How adding evaluations and rendering scale with the size of an experiment.

    python bench/scale.py [--sizes 10 100 1000] [--adds 20]

Builds experiments of 10, 100 and 1,000 runs (saved run states with a realistic parameters table,
5 evaluations and a logged history each, so every run has a chart), then prints for each size:

- the time to add one evaluation: the durable write of its state (``store.add_evaluations``), the
  whole API call ``add_evaluation`` including the re-render of the report and its charts, and
  ``trl-report add-eval`` end to end in a new process;
- the time to re-render the report when nothing changed, and with the caches removed;
- the report's size on disk;

and the time to draw and write one run's chart.

Targets at 1,000 runs: ``add_evaluation()`` 50 ms or less, ``trl-report add-eval`` under 150 ms,
at most 5 ms per chart written.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trl_reporter import charts as chart_data
from trl_reporter import sections
from trl_reporter._fs import atomic_write
from trl_reporter.catalog import find_run
from trl_reporter.history import History
from trl_reporter.maintenance import add_evaluation
from trl_reporter.records import Evaluation, Link, RunRecord, Source, Status, TrackioInfo
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer


def parameters(i: int) -> list[tuple[str, object]]:
    """A realistic curated table; runs differ in learning rate and, now and then, batch size."""
    return [
        ("trainer", {"class": "SFTTrainer", "versions": [["trl", "1.16.0"], ["transformers", "5.24.0"]]}),
        ("learning_rate", [1e-5, 2e-5, 5e-5][i % 3]),
        ("batch_size", 8 if i % 10 else 16),
        ("gradient_accumulation", 4),
        ("effective_batch_size", {"per_device": 8 if i % 10 else 16, "accumulation": 4, "devices": 1}),
        ("epochs", 3.0),
        ("optimizer", "adamw_torch_fused"),
        ("scheduler", {"type": "linear", "warmup_ratio": 0.03}),
        ("weight_decay", 0.0),
        ("max_grad_norm", 1.0),
        ("precision", {"kind": "bf16", "tf32": False}),
        ("seed", 42),
        ("max_length", 1024),
        ("packing", False),
        ("gradient_checkpointing", True),
        ("parameters", {"total": 494_032_768, "trainable": 494_032_768}),
        ("devices", {"count": 1, "kind": "NVIDIA A10G"}),
    ]


def curves(i: int, steps: int = 1233) -> History:
    """A run's history as training logs it: loss every 10 steps, eval metrics every 100."""
    kept = History()
    for step in range(10, steps + 1, 10):
        kept.add("loss", step, 2.5 / (1 + step / 300) + 0.6 + (i % 7) / 100 + 0.02 * math.sin(step))
        if step % 100 == 0:
            kept.add("eval_loss", step, 2.4 / (1 + step / 300) + 0.7)
            kept.add("eval_mean_token_accuracy", step, 0.5 + step / 5000)
    return kept


def build(root: Path, runs: int, *, charts: bool = True) -> ExperimentStore:
    store = ExperimentStore(root, f"scale-{runs}")
    t0 = 1_764_250_000.0
    for i in range(runs):
        record = RunRecord(
            key=f"run-{i:05d}",
            run_name=f"run-{i:05d}",
            experiment=store.experiment,
            started_at=t0 + 60 * i,
            base_model=Link("Qwen/Qwen2.5-0.5B", "https://huggingface.co/Qwen/Qwen2.5-0.5B"),
            dataset=Link("trl-lib/Capybara", "https://huggingface.co/datasets/trl-lib/Capybara"),
            parameters=parameters(i),
            changed_arguments=[("logging_steps", "25"), ("eval_steps", "100")],
            host="gpu-box",
            pid=1000 + i,
            steps_done=1233,
            steps_planned=1233,
            final_loss=1.08,
            trackio=TrackioInfo(
                project="scale", run=f"run-{i:05d}", base_url="https://acme-trackio.hf.space/", local=False
            ),
        )
        record.finish(Status.SUCCESS, at=t0 + 60 * i + 3600)
        record.set_metric("eval_loss", 1.1 + i / 1e4, step=1233, job_link=None)
        history = curves(i) if charts else None
        if history is not None:
            record.curves, record.trend = history.names(), history.trend()
        store.save_run(record, history)
        store.add_evaluations(
            record.key,
            [
                Evaluation(
                    f"bench-{k}",
                    0.5 + (i % 97) / 1000,
                    job_link="https://huggingface.co/jobs/acme/eval",
                    source=Source.API,
                )
                for k in range(4)
            ],
        )
    store.render(renderer(), timeout=30)
    return store


def median_ms(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--adds", type=int, default=20)
    parser.add_argument("--no-charts", action="store_true", help="runs without histories")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "training_reports"
    cli = [str(Path(sys.executable).with_name("trl-report"))]
    print(f"charts: {'off' if options.no_charts else 'on'}; medians")
    print(
        "| Runs | State write | add_evaluation() with re-render | trl-report add-eval (process) "
        "| Re-render, nothing changed | Render, caches cold | Report size |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in options.sizes:
        store = build(root, size, charts=not options.no_charts)
        # Files changed within the last 2 s are read again on purpose (a coarse clock may hide a
        # second change: see _fs.racy); runs are measured as they are in use, saved earlier.
        time.sleep(2.5)
        record = find_run(store, "run-00000")
        writes = []
        for k in range(options.adds):
            start = time.perf_counter()
            store.add_evaluations(record.key, [Evaluation(f"extra-{k}", 0.1, source=Source.API)])
            writes.append(time.perf_counter() - start)
        full = []
        for k in range(options.adds):
            start = time.perf_counter()
            add_evaluation(store.experiment, "run-00001", f"full-{k % 3}", 0.2 + k / 100, report_dir=root)
            full.append(time.perf_counter() - start)
        command = []
        # As installed by pip: modules compiled once, not on every start (PYTHONDONTWRITEBYTECODE off).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for k in range(max(5, options.adds // 2) + 1):
            args = ["add-eval", store.experiment, "run-00002", "--benchmark", f"cli-{k % 3}", "--score", "0.3"]
            start = time.perf_counter()
            subprocess.run([*cli, "--report-dir", str(root), *args], check=True, capture_output=True, env=env)
            if k:  # the first call compiles the modules, as pip would at install time
                command.append(time.perf_counter() - start)
        renders = []
        render = renderer()
        for _ in range(5):
            start = time.perf_counter()
            store.render(render, timeout=30)
            renders.append(time.perf_counter() - start)
        cold = []
        for _ in range(3):
            shutil.rmtree(sections.cache_dir_for(store.state_dir), ignore_errors=True)
            start = time.perf_counter()
            store.render(renderer(), timeout=30)
            cold.append(time.perf_counter() - start)
        size_bytes = store.report_path.stat().st_size
        print(
            f"| {size:,} | {median_ms(writes)} | {median_ms(full)} | {median_ms(command)} | {median_ms(renders)} "
            f"| {median_ms(cold)} | {size_bytes / 1024:,.0f} KiB |"
        )
    if not options.no_charts:
        draw = renderer().draw_chart
        history = curves(0, 100_000)
        target = root / "chart.svg"
        times = []
        for _ in range(20):
            start = time.perf_counter()
            atomic_write(target, draw(chart_data.run_chart("run: loss by step", history.series) or {}), durable=False)
            times.append(time.perf_counter() - start)
        print(
            f"One run chart drawn and written (100,000 steps logged, {sum(map(len, history.series.values()))} points "
            f"kept, {target.stat().st_size / 1024:.0f} KiB): {median_ms(times)}"
        )


if __name__ == "__main__":
    main()
