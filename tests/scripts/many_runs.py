"""One of several concurrent writers: trains RUNS short runs into one shared experiment.

argv: WORKER RUNS MODEL_DIR EXPERIMENT. Odd runs get an explicit name (w<worker>-r<run>); even
runs leave the name to trl-reporter (run-<unix seconds>), so concurrent workers starting in the
same second must still get distinct runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import build_model_once, train

from trl_reporter import ReportCallback


def main() -> None:
    worker, runs, model_dir, experiment = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    model = build_model_once(model_dir)
    for run in range(runs):
        name = f"w{worker}-r{run}" if run % 2 else None
        train(model, [ReportCallback(experiment, trackio=False)], run_name=name, max_steps=2, logging_steps=1)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
