"""Train in a real process and let the parent send a signal mid-training.

argv: MODE MODEL_DIR. Prints "AT STEP 3" (flushed) at step 3, then slows down so that the
parent's signal arrives while training runs. Modes:

- ``default``: SIGTERM/SIGINT dispositions as Python sets them;
- ``previous``: a Python SIGTERM handler installed before training appends to $MARKER and exits 7;
- ``ignore``: SIGTERM is ignored (SIG_IGN) before training starts;
- ``graceful``: a Python SIGTERM handler that only notes the signal and returns.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from helpers import build_model_once, train
from transformers import TrainerCallback

from trl_reporter import ReportCallback


class Announce(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            print("AT STEP 3", flush=True)
        if state.global_step >= 3:
            time.sleep(0.25)


def main() -> None:
    mode, model_dir = sys.argv[1], Path(sys.argv[2])
    model = build_model_once(model_dir)
    if mode == "previous":

        def handler(signum, frame):
            with open(os.environ["MARKER"], "a") as fh:
                fh.write("called\n")
            sys.exit(7)

        signal.signal(signal.SIGTERM, handler)
    elif mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "graceful":
        signal.signal(signal.SIGTERM, lambda signum, frame: print("NOTED", flush=True))
    steps = int(os.environ.get("STEPS", "12"))
    train(model, [ReportCallback(), Announce()], run_name=f"signal-{mode}", max_steps=steps)
    print("TRAINING RETURNED", flush=True)


if __name__ == "__main__":
    main()
