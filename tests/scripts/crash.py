"""Train the tiny model in a real process and end it the way argv[1] says.

Modes: ``raise`` (an uncaught exception at step 3), ``exit0`` (``sys.exit(0)`` at step 3),
``caught`` (the exception is caught by user code, then the process ends normally), ``after``
(training succeeds, then the script dies of an unrelated exception).
"""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import build_model_once, train
from transformers import TrainerCallback

from trl_reporter import ReportCallback


class Boom(RuntimeError):
    pass


class EndAtStep3(TrainerCallback):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            if self.mode == "exit0":
                sys.exit(0)
            raise Boom("the GPU caught fire | at step 3")


def main() -> None:
    mode, model_dir = sys.argv[1], Path(sys.argv[2])
    model = build_model_once(model_dir)
    if mode == "after":
        train(model, [ReportCallback()], run_name="crash-run", max_steps=4)
        raise Boom("pushing the model failed")
    callbacks = [ReportCallback(), EndAtStep3(mode)]
    if mode == "caught":
        try:
            train(model, callbacks, run_name="crash-run", max_steps=8)
        except Boom:
            print("caught it, carrying on")
        return
    train(model, callbacks, run_name="crash-run", max_steps=8)


if __name__ == "__main__":
    main()
