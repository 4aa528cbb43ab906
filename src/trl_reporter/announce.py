"""The reporter's one line of its own, on stderr, as Trackio announces itself: where the report
is, how to read it, and, inside an HF Job that publishes it nowhere, that it will be lost.
``TRL_REPORTER_QUIET=1`` turns it off."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

from .records import RunRecord
from .redact import clean_text
from .store import ExperimentStore

QUIET_ENV = "TRL_REPORTER_QUIET"
KEEP_IT = (
    "this Job's disk is deleted when the Job ends, and the report with it: keep it with "
    "ReportCallback(publish=...) or TRL_REPORTER_PUBLISH, a mounted bucket "
    "(hf jobs run -v hf://buckets/<namespace>/<bucket>:/reports, publish='/reports/training_reports') "
    "or a Hub repo (publish='hf://datasets/<namespace>/<name>')"
)


def announce(record: RunRecord, store: ExperimentStore, environ: Mapping[str, str] = os.environ) -> None:
    if environ.get(QUIET_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    path = store.report_path
    try:
        shown = os.path.relpath(path)
        shown = shown if not shown.startswith("..") else str(path)
    except ValueError:  # another drive on Windows
        shown = str(path)
    line = (
        f"* trl-reporter: run {clean_text(record.run_name)!r} is reported in {clean_text(shown)}; "
        f"read it there, or run: trl-report show {shlex.quote(clean_text(store.experiment))}"
    )
    if record.published_to:
        line += f"; published to {', '.join(record.published_to)}"
    elif record.job_id:
        line += f". Warning: {KEEP_IT}"
    sys.stderr.write(line + "\n")
