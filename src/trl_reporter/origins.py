"""What produced a run, as data: its code, command, versions and machine.

Pure data beside :mod:`~trl_reporter.records` (a run's ``provenance``); :mod:`~trl_reporter.provenance`
captures it, :mod:`~trl_reporter.schema` reads it back as a stranger's, and the template shows it
in a run's "Reproduce this run" block. The uncommitted diff itself is not here: it is a file of its
own beside the run's state (``runs/<key>.patch``), and ``patch`` only says that it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Code:
    """The code a run was started from."""

    reason: str | None = None  # not-a-checkout, no-git, no-commits, timed-out, failed; else None
    commit: str | None = None
    branch: str | None = None  # None when HEAD is detached
    dirty: bool = False
    untracked: list[str] = field(default_factory=list)  # named, at most 1,000 of them
    untracked_count: int = 0
    commit_url: str | None = None  # on GitHub or the Hub
    patch: bool = False  # runs/<key>.patch holds the uncommitted changes
    patch_cut: bool = False  # ... cut at 1 MiB
    patch_id: str | None = None  # the patch's SHA-256, 12 hex digits: two patches told apart
    patch_files: int = 0  # files whose changes the patch holds (git apply needs one)
    left_out: int = 0  # changed files it names but does not hold (binary, not UTF-8, over 1 MiB)

    def label(self) -> str | None:
        """The code in a few characters: the short commit, and which uncommitted changes."""
        if not self.commit:
            return None
        if not self.dirty:
            return self.commit[:12]
        return f"{self.commit[:12]} + uncommitted changes" + (f" (patch {self.patch_id[:8]})" if self.patch_id else "")


@dataclass
class Provenance:
    """Everything that says exactly what produced a run."""

    code: Code = field(default_factory=Code)
    command: list[str] = field(default_factory=list)
    notebook: str | None = None
    versions: list[tuple[str, str]] = field(default_factory=list)  # python, torch, transformers, trl, trl-reporter
    model_revision: str | None = None
    dataset_revision: str | None = None
    dataset_fingerprint: str | None = None
    hardware: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0  # what capturing it cost
