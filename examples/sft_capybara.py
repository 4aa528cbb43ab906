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

On Hugging Face Jobs, where the report would vanish with the job's disk unless it is pushed:

    hf jobs uv run --flavor a10g-large --secrets HF_TOKEN \\
        -e TRL_REPORTER_JOB_OWNER=<you> \\
        examples/sft_capybara.py --trackio-space <you>/trackio --push-report-to <you>/training-reports

Every run appends its section to training_reports/qwen-capybara-sft.md. ``--push-report-to``
uploads the training_reports folder to a Hub dataset repo when the process exits, after
trl-reporter has recorded how the run ended (Success, Completed or Failure), including when the
Job is cancelled (SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys

from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

from trl_reporter import ReportCallback

MODEL = "Qwen/Qwen2.5-0.5B"
DATASET = "trl-lib/Capybara"
EXPERIMENT = "qwen-capybara-sft"


def push_reports_at_exit(repo_id: str) -> None:
    """Upload training_reports/ when the process exits.

    atexit runs handlers in reverse order of registration. This one is registered before
    training starts, so it runs after trl-reporter's own exit hook has written the final status.
    """

    def push() -> None:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path="training_reports",
            path_in_repo="training_reports",
            commit_message=f"trl-reporter: {EXPERIMENT} ({os.environ.get('JOB_ID', 'local run')})",
        )

    atexit.register(push)
    # A cancelled Job gets SIGTERM, whose default action ends the process without running atexit.
    # Turn it into SystemExit instead: trl-reporter's own SIGTERM handler records the failure
    # first and then chains to this one, and the exit status is still 128 + SIGTERM.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


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
    parser.add_argument("--push-report-to", default=None, help="a dataset repo for training_reports/")
    options = parser.parse_args()

    if options.push_report_to:
        push_reports_at_exit(options.push_report_to)

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
        callbacks=[ReportCallback(EXPERIMENT, dataset=DATASET)],
    )
    trainer.train()
    if options.hub_model_id:
        trainer.push_to_hub(dataset_name=DATASET)


if __name__ == "__main__":
    main()
