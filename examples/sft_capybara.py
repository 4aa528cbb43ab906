# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "trl-reporter",
#     "trl>=1.0",
#     "trackio",
#     "datasets",
# ]
# ///
"""The reporting guide's real setup: Qwen/Qwen2.5-0.5B fine-tuned on trl-lib/Capybara.

Locally (needs the network and, realistically, a GPU):

    python examples/sft_capybara.py --trackio-space <you>/trackio

On Hugging Face Jobs, whose disk is deleted when the Job ends, publish the report as it trains.
Either into a Storage Bucket mounted in the Job (no token needed inside the Job):

    hf jobs uv run --flavor a10g-large --secrets HF_TOKEN \\
        -v hf://buckets/<you>/training-reports:/reports \\
        examples/sft_capybara.py --trackio-space <you>/trackio --publish /reports/training_reports

or into a Hub dataset repo (created private if it does not exist):

    hf jobs uv run --flavor a10g-large --secrets HF_TOKEN \\
        examples/sft_capybara.py --trackio-space <you>/trackio --publish hf://datasets/<you>/training-reports

Then, from the project that launched it (add --watch to follow the run until it ends):

    trl-report pull hf://buckets/<you>/training-reports/training_reports
    trl-report pull hf://datasets/<you>/training-reports

Every run appends its section to training_reports/qwen-capybara-sft.md. Publishing runs on a
background thread: at the start, on status changes, after evaluations and at the end, including
a Failure and a cancelled Job (SIGTERM). With --hub-model-id, the report also goes into the
model repo with the Trainer's own pushes (output_dir/training_reports/).
"""

from __future__ import annotations

import argparse

from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

from trl_reporter import ReportCallback

MODEL = "Qwen/Qwen2.5-0.5B"
DATASET = "trl-lib/Capybara"
EXPERIMENT = "qwen-capybara-sft"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--run-name", default=None, help="defaults to the Trackio run name")
    parser.add_argument("--trackio-space", default=None, help="a Space id such as <you>/trackio")
    parser.add_argument("--hub-model-id", default=None, help="push the trained model to this repo")
    parser.add_argument(
        "--publish",
        default=None,
        help="where else to keep the report: a directory (a mounted bucket) or hf://datasets/<you>/<name> "
        "(default: $TRL_REPORTER_PUBLISH)",
    )
    options = parser.parse_args()

    dataset = load_dataset(DATASET, split="train")
    args = SFTConfig(
        output_dir=EXPERIMENT,
        project=EXPERIMENT,
        run_name=options.run_name,
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        max_length=options.max_length,
        logging_steps=25,
        save_strategy="no",
        report_to="trackio",
        trackio_space_id=options.trackio_space,
        push_to_hub=options.hub_model_id is not None,
        hub_model_id=options.hub_model_id,
    )
    trainer = SFTTrainer(
        model=MODEL,
        args=args,
        train_dataset=dataset,
        # The dataset's Hub id is not kept by `datasets`; naming it makes the report's link exact.
        callbacks=[ReportCallback(EXPERIMENT, dataset=DATASET, publish=options.publish)],
    )
    trainer.train()
    if options.hub_model_id:
        trainer.push_to_hub(dataset_name=DATASET)


if __name__ == "__main__":
    main()
