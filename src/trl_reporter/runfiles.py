"""Reading a report's saved files back, as input from a stranger.

Run files, the evaluations saved beside them and run histories are committed, merged and pulled:
each is validated on load (by :mod:`~trl_reporter.schema` and :mod:`~trl_reporter.history`), and
a file that fails is skipped with a warning that names it, once per process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ._fs import read_json
from .errors import RecordError
from .history import History
from .history import load as load_history
from .naming import is_safe_key
from .records import RunRecord
from .redact import clean_text
from .schema import load_evaluation, load_run

logger = logging.getLogger("trl_reporter.store")

# A history of 12 curves of 1,024 points is about 300 KB; anything much larger is not ours.
_MAX_HISTORY_BYTES = 2_000_000
# Warn once per process about each bad file (the CLI loads an experiment more than once).
_warned: set[tuple[str, str]] = set()


def warn_skip(path: Path, why: str) -> None:
    """Say once per process that a saved file is skipped, and why."""
    key = (str(path), why)
    if key not in _warned:
        _warned.add(key)
        logger.warning("trl-reporter: skipping %s: %s", clean_text(str(path)), clean_text(why))


def read_run(path: Path) -> RunRecord | None:
    """A run's record; ``None``, with a warning naming the file, for a file that cannot be one
    (an empty file is a run being claimed this instant, and is skipped silently)."""
    try:
        if path.stat().st_size == 0:
            return None
    except OSError:
        return None
    data = read_json(path)
    if data is None:
        warn_skip(path, "not a JSON object")
        return None
    skipped: list[str] = []
    try:
        record = load_run(data, skipped)
    except RecordError as exc:
        warn_skip(path, str(exc))
        return None
    for why in skipped:
        warn_skip(path, f"an evaluation in it: {why}")
    # The key names the file; a key that differs (or climbs out with "../") is not this file's.
    if record.key != path.stem or not is_safe_key(record.key):
        warn_skip(path, f"its key {record.key[:80]!r} does not match the file name")
        return None
    return record


def attach_evaluations(evals_dir: Path, runs: list[RunRecord]) -> None:
    """Add the evaluations stored beside each run (API, CLI, imported results), in the order they
    were added (their file names sort by time). A folder that is a symlink is not followed."""
    for run in runs:
        folder = evals_dir / run.key
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".json") and e.is_file(follow_symlinks=False))
        except OSError:
            continue  # no evaluations (or not a folder)
        if folder.is_symlink():
            warn_skip(folder, "a symlink, not a folder of evaluations")
            continue
        for name in names:
            path = folder / name
            data = read_json(path)
            if not is_safe_key(path.stem) or data is None or not isinstance(data.get("evaluations"), list):
                warn_skip(path, "not an evaluations file trl-reporter can read")
                continue
            for row in data["evaluations"]:
                try:
                    run.evaluations.append(load_evaluation(row))
                except RecordError as exc:
                    warn_skip(path, f"an evaluation in it: {exc}")


def read_history(path: Path) -> History | None:
    """A run's logged curves; ``None`` if it has none, or, with a warning naming the file, if they
    cannot be read."""
    if not path.exists():
        return None
    if path.parent.is_symlink():
        warn_skip(path.parent, "a symlink, not a folder of histories")
        return None
    try:
        return load_history(read_json(path, limit=_MAX_HISTORY_BYTES))
    except RecordError as exc:
        warn_skip(path, str(exc))
        return None
