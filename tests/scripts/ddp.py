"""Launched by torchrun with 2 ranks on CPU (gloo). argv: MODE MODEL_DIR.

``ok`` trains normally; ``fail`` makes rank 1 raise at step 2, after which torchrun stops rank 0;
``save`` checkpoints every 2 steps, prints "SAVED <step>" on rank 0 and slows down from step 4
(the parent then stops torchrun with SIGTERM); ``resume`` resumes from the latest checkpoint,
with no run name.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from helpers import train
from transformers import TrainerCallback

from trl_reporter import ReportCallback


class FailRank1(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if int(os.environ.get("RANK", "0")) == 1 and state.global_step == 2:
            raise RuntimeError("rank 1 failed")
        if state.global_step >= 2:
            time.sleep(0.5)  # rank 0 is still training when torchrun stops it


class Saved(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(f"SAVED {state.global_step}", flush=True)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= 4:
            time.sleep(0.5)


def main() -> None:
    mode, model_dir = sys.argv[1], Path(sys.argv[2])
    callbacks = [ReportCallback("ddp", trackio=False)]
    if mode == "fail":
        callbacks.append(FailRank1())
    if mode in ("save", "resume"):
        callbacks.append(Saved())
        config = dict(save_strategy="steps", save_steps=2, output_dir="out/ddp-requeue")
        run_name = "ddp-requeue" if mode == "save" else None  # the resumed part has no name
        train(
            model_dir,
            callbacks,
            run_name=run_name,
            max_steps=12,
            ddp_backend="gloo",
            resume=mode == "resume" or None,
            **config,
        )
    else:
        train(model_dir, callbacks, run_name=f"ddp-{mode}", max_steps=8, ddp_backend="gloo")
    # As a well-behaved DDP script ends (and as torch asks): the ranks leave together and the
    # process group is destroyed. Without it a rank's gloo threads may abort at exit
    # ("terminate called without an active exception"), and torchrun then stops rank 0.
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
