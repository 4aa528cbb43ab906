"""Reading state written by trl-reporter 0.1 (schema 1): ``run_id`` was the key, and failure
reasons, stop reasons, notes and parameter rows were sentences. They become schema 2's codes here,
before :mod:`~trl_reporter.schema` checks every field as usual."""

from __future__ import annotations

import re
from typing import Any

from .records import FailureReason, StopReason, TrackioOff

# Schema 1 kept sentences; these are the ones trl-reporter 0.1 wrote.
_V1_FAILURES = {
    "an uncaught exception": FailureReason.EXCEPTION,
    "interrupted (KeyboardInterrupt)": FailureReason.KEYBOARD_INTERRUPT,
    "the process exited before training finished": FailureReason.EXITED,
    "the notebook cell finished before training finished": FailureReason.CELL_FINISHED,
    "training stopped without finishing (a new train() call started)": FailureReason.SUPERSEDED,
    "the process vanished (killed, out of memory, or the machine restarted)": FailureReason.VANISHED,
}


def from_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (trl-reporter 0.1): ``run_id`` was the key, and reasons and notes were sentences."""
    new = dict(data)
    new["key"] = new.pop("run_id", None)
    failure = data.get("failure")
    if isinstance(failure, dict) and isinstance(failure.get("reason"), str):
        text = failure["reason"]
        signal = re.fullmatch(r"(?:terminated|interrupted) by (SIG[A-Z0-9]+)", text)
        reason = FailureReason.SIGNAL if signal else _V1_FAILURES.get(text)
        if failure.get("exc_type") and reason is None:
            reason = FailureReason.EXCEPTION
        new["failure"] = {
            **failure,
            "reason": (reason or FailureReason.OTHER).value,
            "detail": None if reason else text,
            "signal": signal.group(1) if signal else failure.get("signal"),
        }
    if data.get("stop_reason") is not None:
        new["stop_reason"] = StopReason.EARLY.value
    note = data.get("trackio_note")
    if isinstance(note, str) and note.startswith("Trackio logging is off"):
        new["trackio_off"] = TrackioOff.DISABLED.value
    parameters = data.get("parameters")
    if isinstance(parameters, list):  # (label, text) rows: kept as words, under the code "text"
        new["parameters"] = [["text", row] if isinstance(row, list) else row for row in parameters]
    for key in ("base_model", "dataset"):
        link = data.get(key)
        if isinstance(link, dict):
            new[key] = {
                **{k: v for k, v in link.items() if k != "note"},
                "local_path": link.get("note") == "local path",
            }
    return new
