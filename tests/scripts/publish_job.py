"""A job-like training process that publishes its report.

argv: MODEL_DIR RUN_NAME. The environment says the rest, as it would in a Job: JOB_ID,
TRL_REPORTER_PUBLISH (the destination), TRL_REPORTER_DIR (the job's own, throwaway, report
folder). Options from the environment:

- ``EVAL=1``: evaluate every 2 steps (trainer evaluations in the report);
- ``ADD_EVAL=1``: after training, add a benchmark score through the API (an evaluation file);
- ``STALL_AT=N``: print "AT STEP N" (flushed) at step N and slow down, so that the parent can
  send a signal mid-training;
- ``STEPS``: max_steps (default 6).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from helpers import build_model_once, train
from transformers import TrainerCallback

from trl_reporter import ReportCallback, add_evaluation


class Stall(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            print(f"AT STEP {self.at}", flush=True)
        if state.global_step >= self.at:
            time.sleep(0.5)


def main() -> None:
    model, run_name = build_model_once(Path(sys.argv[1])), sys.argv[2]
    callbacks: list = [ReportCallback("job-exp")]
    if os.environ.get("STALL_AT"):
        callbacks.append(Stall(int(os.environ["STALL_AT"])))
    extra: dict = {}
    if os.environ.get("EVAL") == "1":
        from datasets import Dataset

        from trl_reporter.tiny import texts

        extra = dict(eval_dataset=Dataset.from_dict({"text": texts(8)}), eval_strategy="steps", eval_steps=2)
    steps = int(os.environ.get("STEPS", "6"))
    train(model, callbacks, run_name=run_name, max_steps=steps, **extra)
    if os.environ.get("ADD_EVAL") == "1":
        add_evaluation("job-exp", run_name, "mmlu", 0.5, job_link="https://huggingface.co/jobs/acme/eval-1")
    print("TRAINING RETURNED", flush=True)


if __name__ == "__main__":
    main()
