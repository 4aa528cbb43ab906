"""Overhead of ReportCallback on a real training loop.

    python bench/overhead.py [--steps 2000] [--pairs 5]

Trains the tiny model for ``--steps`` steps with and without ReportCallback, in interleaved pairs
(off, on, off, on, ...) so that drift of the machine hits both sides alike, and prints:

- the median over pairs of wall(on) / wall(off) for ``trainer.train()`` (target: at most 1.01),
  once for the reporter alone (``report_to="none"``, ``trackio=False``) and once with Trackio
  logging on both sides (``report_to="trackio"``);
- the report writes (markdown renders and state files) during one run, and how many of them
  happened between the first and the last training step (target: 5 or fewer in all, 0 per step);
- the time reading a run's provenance takes at ``on_train_begin`` (budget: 0.5 s in all).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="bench-trackio-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

import trl_reporter._fs as fs
from trl_reporter import ReportCallback
from trl_reporter.tiny import build_tiny_model, texts


class WriteCounter:
    """Counts atomic writes by kind, and which of them fell inside the step loop."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {"report": 0, "state": 0, "cache": 0}
        self.during_steps = 0
        self.in_steps = False
        self._real = fs.atomic_write

    def __enter__(self) -> WriteCounter:
        def counting(path: Path, data: str, *, durable: bool = True) -> None:
            kind = "report" if path.suffix == ".md" else "state" if durable else "cache"
            self.total[kind] += 1
            if self.in_steps:
                self.during_steps += 1
            self._real(path, data, durable=durable)

        fs.atomic_write = counting
        return self

    def __exit__(self, *exc: object) -> None:
        fs.atomic_write = self._real


class StepWindow(TrainerCallback):
    """Marks the window between the first step's start and the last step's end."""

    def __init__(self, counter: WriteCounter) -> None:
        self.counter = counter

    def on_step_begin(self, args, state, control, **kwargs):
        self.counter.in_steps = True

    def on_step_end(self, args, state, control, **kwargs):
        self.counter.in_steps = state.global_step < state.max_steps


class TimedReportCallback(ReportCallback):
    """ReportCallback with a stopwatch around every event the Trainer sends it."""

    seconds = 0.0


def _timed(name: str):
    inner = getattr(ReportCallback, name)

    def handler(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(self, *args, **kwargs)
        finally:
            TimedReportCallback.seconds += time.perf_counter() - start

    return handler


for _event in [name for name in dir(TrainerCallback) if name.startswith("on_")]:
    setattr(TimedReportCallback, _event, _timed(_event))


def one_run(
    model_dir: Path, workdir: Path, steps: int, reporter: bool, trackio: bool, extra: list | None = None
) -> float:
    args = SFTConfig(
        output_dir=str(workdir / "out"),
        max_steps=steps,
        per_device_train_batch_size=8,
        logging_steps=10,
        save_strategy="no",
        max_length=32,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        report_to="trackio" if trackio else "none",
        project="bench-overhead",
    )
    callbacks = ([ReportCallback(report_dir=workdir / "reports", trackio=trackio)] if reporter else []) + (extra or [])
    trainer = SFTTrainer(
        model=str(model_dir), args=args, train_dataset=Dataset.from_dict({"text": texts(256)}), callbacks=callbacks
    )
    trainer.remove_callback(PrinterCallback)  # printing every log line is noise on both sides
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--without-trackio-pairs", action="store_true", help="skip the with-Trackio comparison")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    model_dir = build_tiny_model(work / "model")
    one_run(model_dir, work / "warmup", 50, reporter=True, trackio=False)  # warm caches and lazy imports

    print(f"overhead: {options.steps} steps of the tiny model, {options.pairs} interleaved pairs (ABBA order)")
    configs = [("reporter alone", False)] + (
        [] if options.without_trackio_pairs else [("with Trackio on both sides", True)]
    )
    for label, trackio in configs:
        ratios, offs, ons = [], [], []
        for i in range(options.pairs):
            # Alternate which side goes first, so that drift of the machine cancels out.
            order = (False, True) if i % 2 == 0 else (True, False)
            walls = {
                side: one_run(
                    model_dir, work / f"{label[:4]}-{side}-{i}", options.steps, reporter=side, trackio=trackio
                )
                for side in order
            }
            off, on = walls[False], walls[True]
            offs.append(off)
            ons.append(on)
            ratios.append(on / off)
        print(
            f"  {label:<28} median ratio on/off {statistics.median(ratios):.4f} "
            f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)}; "
            f"median wall off {statistics.median(offs):.2f} s, on {statistics.median(ons):.2f} s)"
        )

    timed = TimedReportCallback(report_dir=work / "timed" / "reports", trackio=False)
    wall = one_run(model_dir, work / "timed", options.steps, reporter=False, trackio=False, extra=[timed])
    print(
        f"  time inside ReportCallback's handlers in one {options.steps}-step run: {timed.seconds * 1000:.1f} ms "
        f"of {wall:.2f} s ({100 * timed.seconds / wall:.3f}% of train())"
    )

    with WriteCounter() as counter:
        one_run(model_dir, work / "count", options.steps, reporter=True, trackio=False, extra=[StepWindow(counter)])
    print(
        f"  writes in one {options.steps}-step run without evaluations: {counter.total['report']} report renders, "
        f"{counter.total['state']} state files, {counter.total['cache']} cached run sections (no fsync); "
        f"{counter.during_steps} during the step loop "
        f"({counter.during_steps / options.steps:.4f} per step)"
    )
    capture_times(work)


def capture_times(work: Path) -> None:
    """What reading a run's provenance costs at on_train_begin (budget: 0.5 s), in a clean
    checkout, a dirty one (1 MB of changes), and outside any checkout; median of 5."""
    import subprocess

    from trl_reporter import machine, provenance

    env = dict(
        os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b"
    )
    repo = work / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    outside = work / "outside"
    outside.mkdir()
    cases = [
        ("clean checkout", repo, None),
        ("dirty checkout, 1 MB diff", repo, "x" * 1_000_000),
        ("no checkout", outside, None),
    ]
    here = Path.cwd()
    for label, where, change in cases:
        if change:
            (where / "big.txt").write_text(change)
            subprocess.run(["git", "add", "big.txt"], cwd=where, env=env, check=True)
        os.chdir(where)
        try:
            seconds = []
            for _ in range(5):
                machine._installed.cache_clear()  # as in a new process: a run's first capture
                found, _patch = provenance.capture("cpu", None, None, {})
                seconds.append(found.seconds)
        finally:
            os.chdir(here)
        print(f"  provenance captured at on_train_begin, {label}: {statistics.median(seconds) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
