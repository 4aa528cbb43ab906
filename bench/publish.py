"""What publishing costs a training, and how often it pushes.

    python bench/publish.py [--steps 300] [--deadline 30]

Runs the real huggingface_hub client against the fake Hub of tests/fakehub.py on 127.0.0.1 (no
network), and prints:

1. the time training waits on publishing: a real training of ``--steps`` steps with the report
   published to a directory and to a Hub dataset repo; the wall time of ReportCallback's handlers
   per step, with and without publishing, and the publish requests made on the training thread
   inside the step loop, with the time spent in them (a request only notes it: the push runs on
   the publisher's thread);
2. the pushes per hour of a long run, per destination kind: an hour simulated on a virtual clock
   (a heartbeat a minute, an evaluation every 10 minutes), real pushes;
3. the final push time against the fake Hub: healthy, slow (every request answered after 1 s)
   and hanging (no answer at all; the final push gives up at its deadline, 30 s by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="bench-trackio-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["TRL_REPORTER_QUIET"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fakehub
import pytest

from trl_reporter import publish
from trl_reporter.destinations import parse
from trl_reporter.records import RunRecord
from trl_reporter.store import ExperimentStore
from trl_reporter.targets import Target
from trl_reporter.template import renderer


def handler_time(model: Path, steps: int, destination: str | None, workdir: Path) -> tuple[float, int, float]:
    """(handler seconds per step, publish requests made between the first and the last step, and
    the seconds the training thread spent in them)."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from trl_reporter import ReportCallback
    from trl_reporter.tiny import texts

    callback = ReportCallback("bench", report_dir=workdir / "reports", publish=destination, trackio=False)
    spent: list[float] = []
    inside = {"on": False, "notified": 0, "waited": 0.0}
    real_notify = publish.Publisher.notify

    def counting(self: publish.Publisher, reason: str) -> int:
        started = time.perf_counter()
        asked = real_notify(self, reason)
        if inside["on"] and reason not in ("start", "final"):
            inside["notified"] += 1
            inside["waited"] += time.perf_counter() - started
        return asked

    for name in ("on_step_end", "on_log"):
        real = getattr(callback, name)

        def timed(*a, _real=real, **k):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            _real(*a, **k)
            spent.append(time.perf_counter() - started)

        setattr(callback, name, timed)

    class Steps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            inside["on"] = state.global_step < steps - 1

    args = SFTConfig(
        output_dir=str(workdir / "out"),
        use_cpu=True,
        bf16=False,
        max_steps=steps,
        logging_steps=10,
        per_device_train_batch_size=2,
        save_strategy="no",
        max_length=32,
        disable_tqdm=True,
        report_to="none",
    )
    publish.Publisher.notify = counting  # type: ignore[method-assign]
    try:
        trainer = SFTTrainer(
            model=str(model),
            args=args,
            train_dataset=Dataset.from_dict({"text": texts(64)}),
            callbacks=[callback, Steps()],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    finally:
        publish.Publisher.notify = real_notify  # type: ignore[method-assign]
    return sum(spent) / steps, int(inside["notified"]), float(inside["waited"])


def pushes_per_hour(spec: str, hub: fakehub.FakeHub, workdir: Path) -> int:
    store = ExperimentStore(workdir / f"reports-{len(hub.requests)}", "long")
    record = RunRecord(key="long", run_name="long", experiment="long", started_at=time.time(), run_id="b" * 32)
    store.save_run(record)
    clock = [0.0]
    target = Target(parse(spec))
    commits_before = len(hub.commits("dataset", "alice/bench"))
    publisher = publish.Publisher(store, renderer(), target, lambda: "long", clock=lambda: clock[0])
    publisher.notify("start")
    for minute in range(1, 61):
        clock[0] = minute * 60.0
        record.steps_done = minute * 100
        store.save_run(record)
        publisher.notify("heartbeat")
        if minute % 10 == 0:
            publisher.notify("evaluation")
        time.sleep(0.05)  # the worker runs between the simulated minutes, as it would in an hour
    clock[0] = 3600.0
    publisher.finish(60)
    if spec.startswith("hf://"):
        return len(hub.commits("dataset", "alice/bench")) - commits_before
    return target.pushes


def final_push(hub: fakehub.FakeHub, workdir: Path, mode: str, deadline: float) -> float:
    store = ExperimentStore(workdir / f"final-{mode}", "final")
    record = RunRecord(key="r", run_name="r", experiment="final", started_at=time.time(), run_id="c" * 32)
    store.save_run(record)
    publisher = publish.Publisher(store, renderer(), Target(parse("hf://datasets/alice/final")), lambda: "r")
    hub.hang_all = mode == "hanging"
    if mode == "slow":
        hub.inject("any", *[("slow", 1.0)] * 50)
    started = time.monotonic()
    publisher.finish(deadline)
    took = time.monotonic() - started
    hub.hang_all = False
    hub._faults.clear()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--deadline", type=float, default=publish.FINAL_DEADLINE)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    os.environ["HF_HOME"] = str(workdir / "hf")
    from trl_reporter.tiny import build_tiny_model

    model = workdir / "model"
    build_tiny_model(model)
    monkeypatch = pytest.MonkeyPatch()
    with fakehub.FakeHub() as hub:
        fakehub.use_fake_hub(hub, monkeypatch)
        print(f"1. time training waits on publishing ({options.steps} steps, handler time per step)")
        rows = []
        for label, spec in (
            ("not published", None),
            ("directory", str(workdir / "volume")),
            ("Hub repo", "hf://datasets/alice/bench-train"),
        ):
            runs = [handler_time(model, options.steps, spec, workdir / f"{label}-{i}") for i in range(3)]
            rows.append(
                (label, statistics.median(r[0] for r in runs), max(r[1] for r in runs), max(r[2] for r in runs))
            )
        base = rows[0][1]
        for label, per_step, notified, waited in rows:
            print(
                f"   {label:14s} handlers {per_step * 1e6:6.1f} µs/step ({(per_step - base) * 1e6:+5.1f} µs against not"
                f" published); inside the step loop: {notified} publish request(s), {waited * 1e6:.0f} µs in all,"
                f" {waited / options.steps * 1e6:.2f} µs per step"
            )
        print("2. pushes per hour of a long run (a heartbeat a minute, an evaluation every 10 minutes)")
        print(f"   directory      {pushes_per_hour(str(workdir / 'long-volume'), hub, workdir):4d} pushes")
        print(f"   Hub repo       {pushes_per_hour('hf://datasets/alice/bench', hub, workdir):4d} commits")
        print(f"3. final push time against the fake Hub (deadline {options.deadline:g} s)")
        for mode in ("healthy", "slow", "hanging"):
            took = final_push(hub, workdir, mode, options.deadline)
            print(f"   {mode:8s} {took:6.2f} s")
        monkeypatch.undo()


if __name__ == "__main__":
    main()
