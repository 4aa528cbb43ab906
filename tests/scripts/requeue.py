"""One process of a preemptible training, as a cluster requeue or a relaunched HF Job runs it.

argv: MODEL_DIR. Trains in ``out/requeue`` with a checkpoint every 2 steps, prints "SAVED <step>"
(flushed) at each, and from step $SLOW on (if set) slows down so that the parent's SIGTERM
arrives mid-training. Environment: RESUME=1 resumes from the latest checkpoint
(``resume_from_checkpoint=True``); RUN_NAME sets a run name (none by default: transformers'
own); LR the learning rate (1e-3); STEPS the planned steps (12); EVAL=1 evaluates every 2 steps.
Trackio is on, as by default.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from datasets import Dataset
from helpers import build_model_once, sft_config
from transformers import TrainerCallback
from trl import SFTTrainer

from trl_reporter import ReportCallback
from trl_reporter.tiny import texts


class Saved(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        print(f"SAVED {state.global_step}", flush=True)

    def on_step_end(self, args, state, control, **kwargs):
        if os.environ.get("SLOW") and state.global_step >= int(os.environ["SLOW"]):
            time.sleep(0.3)


def main() -> None:
    model = build_model_once(Path(sys.argv[1]))
    config = dict(
        output_dir="out/requeue",
        max_steps=int(os.environ.get("STEPS", "12")),
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        learning_rate=float(os.environ.get("LR", "1e-3")),
    )
    if os.environ.get("RUN_NAME"):
        config["run_name"] = os.environ["RUN_NAME"]
    if os.environ.get("EVAL"):
        config.update(eval_strategy="steps", eval_steps=2)
    trainer = SFTTrainer(
        model=str(model),
        args=sft_config(**config),
        train_dataset=Dataset.from_dict({"text": texts(32)}),
        eval_dataset=Dataset.from_dict({"text": texts(8)}) if os.environ.get("EVAL") else None,
        callbacks=[ReportCallback("requeue"), Saved()],
    )
    trainer.train(resume_from_checkpoint=True if os.environ.get("RESUME") else None)
    print("TRAINING RETURNED", flush=True)


if __name__ == "__main__":
    main()
