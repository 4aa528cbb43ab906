"""Quickstart: two real SFT runs of one experiment, reported by trl-reporter, fully offline.

    python examples/quickstart.py

Builds a tiny Llama model in code (seeded, no download), trains it twice with TRL's SFTTrainer at
two learning rates, logs both runs to local Trackio, and prints the path of the report:
training_reports/quickstart.md at the root of this project, with its charts beside it in
training_reports/quickstart/.
"""

from __future__ import annotations

import os
import tempfile

# Offline by construction: nothing here needs the Hub. Set before the HF libraries are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_reporter import ReportCallback
from trl_reporter.tiny import build_tiny_model, texts


def main() -> None:
    model_dir = build_tiny_model(os.path.join(tempfile.gettempdir(), "trl-reporter-tiny-llama"))
    dataset = Dataset.from_dict({"text": texts(64)})
    eval_dataset = Dataset.from_dict({"text": texts(16)})
    report = None
    for learning_rate in (1e-3, 3e-4):
        args = SFTConfig(
            output_dir=os.path.join(tempfile.gettempdir(), "trl-reporter-quickstart", f"lr-{learning_rate:g}"),
            project="quickstart",  # the experiment (training_reports/quickstart.md) and the Trackio project
            run_name=f"tiny-lr-{learning_rate:g}",
            learning_rate=learning_rate,
            max_steps=30,
            per_device_train_batch_size=8,
            logging_steps=5,
            eval_strategy="steps",
            eval_steps=15,
            save_strategy="no",
            max_length=32,
            use_cpu=True,  # runs anywhere; drop these two lines on a GPU
            bf16=False,
        )
        # The sentences trained on here stand in for a Hub dataset; naming it links it in the report.
        callback = ReportCallback(dataset="trl-lib/Capybara")
        trainer = SFTTrainer(
            model=str(model_dir),
            args=args,
            train_dataset=dataset,
            eval_dataset=eval_dataset,
            callbacks=[callback],
        )
        trainer.train()
        report = callback.report_path
    print(f"Report written to {report}")


if __name__ == "__main__":
    main()
