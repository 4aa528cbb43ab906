"""The chart files beside a report: drawn when their data changed, and only then.

``training_reports/<experiment>/loss.svg`` overlays the runs' training loss and
``training_reports/<experiment>/runs/<run>.svg`` draws one run's curves; the report links them by
relative paths, so they show wherever the folder is read (GitHub, the Hub). A chart is redrawn only
when what it is drawn from changed: its run's history file (known by its size, time and inode), the
run's name, or the chart template. What was drawn from what is local bookkeeping in this user's
cache folder; without it, a chart is drawn again but the file is rewritten only if its bytes
differ, so a commit shows only the charts that really changed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import _fs, charts
from .facts import RunSource
from .history import History
from .naming import is_safe_key
from .redact import clean_text

logger = logging.getLogger(__name__)

OVERLAY = "loss.svg"
_INDEX = "charts.json"


@dataclass
class Charts:
    """The charts a report may link, as paths relative to the report."""

    runs: dict[str, str] = field(default_factory=dict)
    overlay: str | None = None
    state: str | None = None  # the experiment's state folder (its runs' patches are in runs/)


def _names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries}
    except OSError:
        return set()


def _racy(identity: list[int] | None) -> bool:
    return identity is None or _fs.racy(identity[0], identity[1])


def _identity(path: str | Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


class ChartWriter:
    """Brings the chart files of one experiment up to date with its runs."""

    def __init__(
        self,
        chart_dir: Path,
        history_dir: Path,
        load_history: Callable[[str], History | None],
        draw: Callable[[dict[str, Any]], str],
        digest: str,
        cache_dir: Path | None,
    ) -> None:
        self.chart_dir = chart_dir
        self._history_dir = str(history_dir)  # a string: one stat per run, no Path objects
        self._load_history = load_history
        self._draw = draw
        self._digest = digest
        self._index_path = cache_dir / _INDEX if cache_dir is not None else None
        self._index: dict[str, Any] = self._read_index()

    def update(self, runs: list[RunSource], *, check: bool = False) -> Charts:
        """Draw what changed, remove charts of runs that are gone; returns what the report links.

        A chart is drawn again when its run's history file (one ``stat``), its name or the chart
        template changed, or its file is gone; ``check`` (a full render) draws every chart again
        and rewrites those whose bytes differ. A chart that cannot be drawn is left out, alone.
        """
        found = Charts(state=f".trl-reporter/{self.chart_dir.name}")
        runs_dir = self.chart_dir / "runs"
        if self.chart_dir.is_symlink() or runs_dir.is_symlink():
            logger.warning("trl-reporter: not writing charts through the symlink %s", self.chart_dir)
            return found
        present = _names(runs_dir)
        prefix = f"{quote(self.chart_dir.name)}/runs/"
        index = {} if check else dict(self._index)
        # Every history file is replaced, never edited (an atomic write, a checkout), which moves
        # the folder's times: while they are as they were at the last update, no file changed.
        folder = _identity(self._history_dir)
        still = folder is not None and not _racy(folder) and index.get("history") == folder
        kept: set[str] = {"history"}
        overlay_inputs: list[tuple[str, str, list[int] | None]] = []
        for source in runs:
            run = source.facts
            key, name, slot = run["key"], run["name"], f"run:{run['key']}"
            if not run["curves"]:
                continue
            entry = index.get(slot)
            if still and entry is not None and entry[2] is not None:
                history: list[int] | None = entry[2]
            else:
                history = _identity(f"{self._history_dir}/{key}.json")
            if history is None:
                continue
            kept.add(slot)
            if not (index.get(slot) == [self._digest, name, history] and f"{key}.svg" in present):
                if not self._drawn(key, self._write_run, key, name, runs_dir / f"{key}.svg"):
                    index.pop(slot, None)
                    continue
                # A file changed within the filesystem's time resolution may change again unseen.
                index[slot] = [self._digest, name, None if _racy(history) else history]
            if "loss" in run["curves"]:
                overlay_inputs.append((key, name, history))
            found.runs[key] = f"{prefix}{key}.svg"  # a run key is URL-safe (naming.is_safe_key)
        total = len(overlay_inputs)
        overlay_inputs = overlay_inputs[-charts.MAX_OVERLAY_RUNS :]
        title = (
            "Training loss of every run"
            if total == len(overlay_inputs)
            else f"Training loss of the latest {len(overlay_inputs)} of {total} runs"
        )
        target = self.chart_dir / OVERLAY
        stamp = [self._digest, title, [list(i) for i in overlay_inputs]]
        if overlay_inputs:
            fresh = index.get("overlay") == stamp and target.is_file()
            if fresh or self._drawn("the overlay", self._write_overlay, overlay_inputs, title, target):
                racy = any(_racy(history) for _, _, history in overlay_inputs)
                index["overlay"] = None if racy else stamp
                found.overlay = f"{quote(self.chart_dir.name)}/{OVERLAY}"
        index["history"] = folder
        index = {slot: entry for slot, entry in index.items() if slot in kept or (slot == "overlay" and found.overlay)}
        self._prune(runs_dir, set(found.runs), keep_overlay=found.overlay is not None)
        if index != self._index:
            self._write_index(index)
        return found

    @staticmethod
    def _drawn(what: str, draw: Callable[..., bool], *args: Any) -> bool:
        try:
            return draw(*args)
        except Exception as exc:  # noqa: BLE001 - one chart never costs the others, or the report
            logger.warning("trl-reporter: could not draw the chart of %s: %r", clean_text(what), exc)
            return False

    def _write_run(self, key: str, name: str, target: Path) -> bool:
        history = self._load_history(key)
        data = charts.run_chart(f"{name}: loss by step", history.series) if history else None
        return data is not None and self._write(target, self._draw(data))

    def _write_overlay(self, inputs: list[tuple[str, str, list[int] | None]], title: str, target: Path) -> bool:
        lines = []
        names = [name for _, name, _ in inputs]
        for key, name, _ in inputs:
            history = self._load_history(key)
            if history is not None:
                # Runs that share a name are told apart by their keys, as trl-report names them.
                lines.append((name if names.count(name) == 1 else key, history.series.get("loss", [])))
        data = charts.overlay_chart(title, lines)
        return data is not None and self._write(target, self._draw(data))

    def _write(self, target: Path, svg: str) -> bool:
        data = svg.encode("utf-8", "backslashreplace")
        if _fs.read_regular(target, len(data)) == data:  # never follows a symlink planted there
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write(target, svg, durable=False)  # redrawn from the state if a crash tears it
        return True

    def _prune(self, runs_dir: Path, keep: set[str], *, keep_overlay: bool) -> None:
        """Remove charts no run shows any more (a run's state removed, its history lost)."""
        try:
            entries = list(os.scandir(runs_dir))
        except OSError:
            entries = []
        for entry in entries:
            stem = entry.name[:-4]
            if entry.name.endswith(".svg") and is_safe_key(stem) and stem not in keep and not entry.is_dir():
                _unlink(Path(entry.path))
        if not keep_overlay:
            _unlink(self.chart_dir / OVERLAY)

    def _read_index(self) -> dict[str, Any]:
        if self._index_path is None:
            return {}
        try:
            data = json.loads(self._index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        # Entries of another shape (an older trl-reporter, a torn write) are redrawn.
        return {k: v for k, v in data.items() if k in ("overlay", "history") or (isinstance(v, list) and len(v) == 3)}

    def _write_index(self, index: dict[str, Any]) -> None:
        if self._index_path is None:
            return
        try:
            self._index_path.parent.mkdir(parents=True, exist_ok=True)
            _fs.atomic_write(self._index_path, json.dumps(index), durable=False)
        except OSError:
            pass  # the next render draws again, and rewrites nothing that is the same
        self._index = index


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("trl-reporter: could not remove the old chart %s: %s", path, exc)
