"""A writer that does nothing but write: it saves a growing run and re-renders the report in a
loop, so that a SIGKILL from the parent lands in the middle of a write as often as possible.

argv: REPORT_DIR EXPERIMENT RUN_NAME. Prints "READY" once the first write is done.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trl_reporter.records import RunRecord
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer


def main() -> None:
    root, experiment, run_name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    store = ExperimentStore(root, experiment)
    store.clean_debris()  # what every reporter start does
    render = renderer()
    record = RunRecord(key=run_name, run_name=run_name, experiment=experiment, started_at=time.time())
    step = 0
    while True:
        step += 1
        record.parameters = [(f"param {i}", "x" * (step % 300)) for i in range(40)]
        record.steps_done = step
        store.save_run(record)
        store.render(render, timeout=5)
        if step == 1:
            print("READY", flush=True)


if __name__ == "__main__":
    main()
