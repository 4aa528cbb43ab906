"""Notebook endings through a real IPython kernel (nbclient): sys.excepthook never fires there,
so the post_run_cell hook must see a failing cell, a cell that swallowed the exception, and a
successful cell, and it must never print an error or disturb later cells."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from helpers import REPO, run_states
from nbclient import NotebookClient

SETUP = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from helpers import train
from transformers import TrainerCallback
from trl_reporter import ReportCallback

class Boom(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise ValueError("cell exploded")
"""


def test_failing_cell_caught_exception_and_successful_cell(project: Path, tiny_model: Path) -> None:
    model = str(tiny_model)
    cells = [
        SETUP,
        f"train({model!r}, [ReportCallback(), Boom()], run_name='nb-fails')",
        f"try:\n    train({model!r}, [ReportCallback(), Boom()], run_name='nb-caught')\nexcept ValueError:\n    pass",
        f"train({model!r}, [ReportCallback()], run_name='nb-works')",
        "from trl_reporter.endings import ProcessHooks\n"
        "hooks = [f for f in get_ipython().events.callbacks['post_run_cell'] if isinstance(getattr(f, '__self__', None), ProcessHooks)]\n"
        "print('later cell ok', len(hooks))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(
        nb, kernel_name="python3", allow_errors=True, timeout=300, resources={"metadata": {"path": str(project)}}
    ).execute()

    outputs = [c.get("outputs", []) for c in nb.cells]
    errors = [o for cell in outputs for o in cell if o.get("output_type") == "error"]
    assert [e["ename"] for e in errors] == ["ValueError"]  # only the user's own error, once
    assert "Error in callback" not in json.dumps(outputs)
    assert any("later cell ok 0" in o.get("text", "") for o in outputs[4])  # every hook unregistered itself

    states = {s["run_name"]: s for s in run_states(project)}
    assert states["nb-fails"]["status"] == "Failure"
    assert states["nb-fails"]["failure"]["exc_type"] == "ValueError"
    assert states["nb-fails"]["steps_done"] == 2
    assert states["nb-caught"]["status"] == "Failure"
    assert states["nb-caught"]["failure"]["reason"] == "cell-finished"
    assert states["nb-works"]["status"] == "Success"
