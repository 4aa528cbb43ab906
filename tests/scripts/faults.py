"""Train in a real process while the outside world misbehaves, the way argv[1] says.

argv: MODE MODEL_DIR REPORT_DIR. Modes:

- ``enospc-recover``: the disk is full while ``on_train_end`` writes (every atomic write raises
  ENOSPC), and has room again once ``train()`` returns; the process then exits normally.
- ``enospc-stays``: the same, but the disk stays full until the process has exited.
- ``surrogates``: run name, experiment name and exception message hold lone surrogates (what
  Python makes of a file name that is not UTF-8); training dies of that exception at step 3.
- ``render-signal``: the process's second report render (after an evaluation) prints
  "RENDERING" and takes 3 s while it holds the report lock, so that the parent's SIGTERM lands
  inside it.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

from helpers import build_model_once, train
from transformers import TrainerCallback

import trl_reporter._fs as fs
from trl_reporter import ReportCallback
from trl_reporter.store import ExperimentStore

DISK_FULL = {"on": False}


def _patch_disk() -> None:
    real = fs.atomic_write

    def atomic_write(path, data):  # type: ignore[no-untyped-def]
        if DISK_FULL["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    fs.atomic_write = atomic_write


class FillDiskAtTrainEnd(TrainerCallback):
    def on_train_end(self, args, state, control, **kwargs):
        DISK_FULL["on"] = True


class FailAtStep3(TrainerCallback):
    def __init__(self, message: str) -> None:
        self.message = message

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise RuntimeError(self.message)


def _slow_second_render() -> None:
    real = ExperimentStore.render_locked
    count = {"n": 0}

    def render_locked(self, renderer, **kwargs):  # type: ignore[no-untyped-def]
        count["n"] += 1
        if count["n"] == 2:
            print("RENDERING", flush=True)
            time.sleep(3)
        return real(self, renderer, **kwargs)

    ExperimentStore.render_locked = render_locked  # type: ignore[method-assign]


def main() -> None:
    mode, model_dir, report_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    model = build_model_once(model_dir)
    if mode.startswith("enospc"):
        _patch_disk()
        # The filling callback runs before the reporter's own on_train_end.
        train(
            model,
            [FillDiskAtTrainEnd(), ReportCallback("disk", report_dir=report_dir, trackio=False)],
            run_name=mode,
            max_steps=4,
        )
        if mode == "enospc-recover":
            DISK_FULL["on"] = False
        print("TRAINING RETURNED", flush=True)
    elif mode == "surrogates":
        bad = os.fsdecode(b"\xff\xfe")
        train(
            model,
            [ReportCallback("exp-" + bad, report_dir=report_dir, trackio=False), FailAtStep3("bad " + bad)],
            run_name="run-" + bad,
            max_steps=8,
        )
    elif mode == "render-signal":
        from datasets import Dataset

        from trl_reporter.tiny import texts

        _slow_second_render()
        train(
            model,
            [ReportCallback("render", report_dir=report_dir, trackio=False)],
            run_name="render-signal",
            max_steps=8,
            eval_strategy="steps",
            eval_steps=2,
            eval_dataset=Dataset.from_dict({"text": texts(8)}),
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
