"""How adding evaluations and rendering scale with the size of an experiment.

    python bench/scale.py [--sizes 10 100 1000] [--adds 20]

Builds experiments of 10, 100 and 1,000 runs (saved run states with a realistic parameters table,
each with 5 evaluations), then prints for each size:

- the time to add one evaluation: the durable write of its state (``store.add_evaluations``), and
  the whole API call ``add_evaluation`` including the re-render of the report;
- the time to re-render the report from the saved state;
- the report's size on disk.

Targets at 1,000 runs: adding one evaluation under 100 ms, and growth no worse than linear.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from trl_reporter.catalog import find_run
from trl_reporter.maintenance import add_evaluation
from trl_reporter.records import Evaluation, Link, RunRecord, Source, Status, TrackioInfo
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer

PARAMS = [
    ("Trainer", "SFTTrainer (trl 1.16.0, transformers 5.24.0, torch 2.13.0)"),
    ("Learning Rate", "2e-05"),
    ("Batch Size (per device)", "8"),
    ("Gradient Accumulation Steps", "4"),
    ("Effective Batch Size", "32 (8 × 4 × 1 device)"),
    ("Epochs", "3.0"),
    ("Optimizer", "adamw_torch_fused"),
    ("LR Scheduler", "linear, warmup ratio 0.03"),
    ("Weight Decay", "0.0"),
    ("Max Grad Norm", "1.0"),
    ("Precision", "bf16"),
    ("Seed", "42"),
    ("Max Sequence Length", "1024"),
    ("Packing", "no"),
    ("Gradient Checkpointing", "yes"),
    ("Parameters", "494,032,768 (all trainable)"),
    ("Devices", "1 × NVIDIA A10G"),
]


def build(root: Path, runs: int) -> ExperimentStore:
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
            parameters=PARAMS,
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
        store.save_run(record)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--adds", type=int, default=20)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "training_reports"
    print(
        "| Runs | Add one evaluation: state write (median) | add_evaluation() with re-render (median) | Re-render (median) | Report size |"
    )
    print("|---|---|---|---|---|")
    for size in options.sizes:
        store = build(root, size)
        record = find_run(store, "run-00000")
        writes = []
        for k in range(options.adds):
            start = time.perf_counter()
            store.add_evaluations(record.key, [Evaluation(f"extra-{k}", 0.1, source=Source.API)])
            writes.append(time.perf_counter() - start)
        full = []
        for k in range(max(3, options.adds // 4)):
            start = time.perf_counter()
            add_evaluation(store.experiment, "run-00001", f"full-{k}", 0.2, report_dir=root)
            full.append(time.perf_counter() - start)
        renders = []
        render = renderer()
        for _ in range(5):
            start = time.perf_counter()
            store.render(render, timeout=30)
            renders.append(time.perf_counter() - start)
        size_bytes = store.report_path.stat().st_size
        print(
            f"| {size:,} | {1000 * statistics.median(writes):.2f} ms | {1000 * statistics.median(full):.1f} ms "
            f"| {1000 * statistics.median(renders):.1f} ms | {size_bytes / 1024:,.0f} KiB |"
        )


if __name__ == "__main__":
    main()
