"""Is a report behind its saved state? Answered with a few ``stat`` calls, not a load.

Every saved change appends one byte to ``.generation`` (``O_APPEND``: atomic, no lock), and every
atomic write (and every git checkout) replaces entries of the state folders, which moves their
modification times. A render records both, with the report file's own time and size, in
``.rendered``; a report is behind when that record no longer matches. Both files are local
bookkeeping, kept out of git.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import _fs

GENERATION = ".generation"
RENDERED = ".rendered"


def count_change(state_dir: Path) -> None:
    """Count one saved change."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(state_dir / GENERATION, flags, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def quick_stamp(state_dir: Path) -> list[object]:
    """The part of :func:`state_stamp` that every change trl-reporter saves moves (the generation),
    and the folders' own times: whether anything was saved since, in three ``stat`` calls."""
    evals = state_dir / "evals"
    return [_stat(state_dir / GENERATION)[1], _stat(state_dir / "runs")[0], _stat(evals)[0]]


def state_stamp(state_dir: Path) -> list[object]:
    """What identifies the saved state of one experiment now."""
    stamp = quick_stamp(state_dir)
    evals = state_dir / "evals"
    try:
        with os.scandir(evals) as entries:
            stamp += sorted([e.name, e.stat().st_mtime_ns] for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        pass
    return stamp


def mark_rendered(state_dir: Path, report: Path, stamp: list[object]) -> None:
    """Record that ``report`` was just rendered from the state ``stamp`` describes (not durably:
    a marker lost in a crash only makes the next command render again)."""
    _fs.atomic_write(state_dir / RENDERED, json.dumps(_marker(report, stamp)) + "\n", durable=False)


def is_behind(state_dir: Path, report: Path) -> bool:
    """Whether ``report`` may lack a saved change, or was changed by a merge or by hand."""
    try:
        recorded = json.loads((state_dir / RENDERED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return bool(recorded != _marker(report, state_stamp(state_dir)))


def _marker(report: Path, stamp: list[object]) -> dict[str, object]:
    return {"state": json.loads(json.dumps(stamp)), "report": list(_stat(report))}


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return 0, -1
    return st.st_mtime_ns, st.st_size
