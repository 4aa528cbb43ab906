"""trl-reporter: a live markdown training report for Hugging Face TRL and transformers.

    from trl_reporter import ReportCallback
    trainer = SFTTrainer(..., callbacks=[ReportCallback()])

Importing this package has no side effects: no logging setup, no disk access, no network. The
callback (and with it transformers and torch) is imported on first use, so that the ``trl-report``
command starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    DestinationError,
    EvaluationError,
    RecordError,
    StatusError,
    StoreError,
    TemplateError,
    TrlReporterError,
)

__version__ = "0.1.0"
__all__ = [
    "DestinationError",
    "EvaluationError",
    "RecordError",
    "ReportCallback",
    "Score",
    "StatusError",
    "StoreError",
    "TemplateError",
    "TrlReporterError",
    "__version__",
    "add_evaluation",
    "add_evaluations",
]

if TYPE_CHECKING:
    from .callback import ReportCallback
    from .evals import Score
    from .maintenance import add_evaluation, add_evaluations


def __getattr__(name: str) -> Any:
    if name == "ReportCallback":
        from .callback import ReportCallback

        return ReportCallback
    if name in ("add_evaluation", "add_evaluations"):
        from . import maintenance

        return getattr(maintenance, name)
    if name == "Score":
        from .evals import Score

        return Score
    raise AttributeError(f"module 'trl_reporter' has no attribute {name!r}")
