"""What a run's section says of the code and command that produced it (see provenance): the
"Reproduce this run" block, and the code as a short label for the tables."""

from __future__ import annotations

import shlex
from typing import Any

from .markdown import safe_url
from .records import RunRecord


def reproduce(run: RunRecord, patch: str | None, previous_code: str | None) -> dict[str, Any] | None:
    """What the "Reproduce this run" block shows: the checkout, the patch, the command, versions."""
    found = run.provenance
    if found is None:
        return None
    code = found.code
    label = code.label()
    return {
        "reason": code.reason,
        "commit": code.commit,
        "short": code.commit[:12] if code.commit else None,
        "label": label,
        # Other code than the previous run of the group: the parameters table marks it.
        "changed": previous_code is not None and label is not None and label != previous_code,
        "commit_url": safe_url(code.commit_url),
        "branch": code.branch,
        "dirty": code.dirty,
        "untracked": code.untracked_count,
        "patch": patch,
        "apply": f"git apply {shlex.quote(patch.rsplit('/', 1)[-1])}  # the patch linked above"
        if patch and code.patch_files
        else None,
        "patch_cut": code.patch_cut,
        "left_out": code.left_out,
        "command": shlex.join(found.command) if found.command else None,
        "notebook": found.notebook,
        "versions": [list(v) for v in found.versions],
        "model_revision": found.model_revision,
        "dataset_revision": found.dataset_revision,
        "dataset_fingerprint": found.dataset_fingerprint,
        "hardware": [list(h) for h in found.hardware],
    }


def code_change(run: RunRecord, first: str | None) -> str | None:
    """The run's code, when it is other than the first run's of its group (both known)."""
    label = run.provenance.code.label() if run.provenance else None
    return label if label is not None and first is not None and label != first else None
