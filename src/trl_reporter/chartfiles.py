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
from .history import History
from .naming import is_safe_key
from .records import RunRecord

logger = logging.getLogger(__name__)

OVERLAY = "loss.svg"
_INDEX = "charts.json"


@dataclass
class Charts:
    """The charts a report may link, as paths relative to the report."""

    runs: dict[str, str] = field(default_factory=dict)
    overlay: str | None = None


def _identity(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


class ChartWriter:
    """Brings the chart files of one experiment up to date with its runs."""

    def __init__(
        self,
        chart_dir: Path,
        history_path: Callable[[str], Path],
        load_history: Callable[[str], History | None],
        draw: Callable[[dict[str, Any]], str],
        digest: str,
        cache_dir: Path | None,
    ) -> None:
        self.chart_dir = chart_dir
        self._history_path = history_path
        self._load_history = load_history
        self._draw = draw
        self._digest = digest
        self._index_path = cache_dir / _INDEX if cache_dir is not None else None
        self._index: dict[str, Any] = self._read_index()
        self.written = 0

    def update(self, runs: list[RunRecord]) -> Charts:
        """Draw what changed, remove charts of runs that are gone; returns what the report links."""
        found = Charts()
        runs_dir = self.chart_dir / "runs"
        if self.chart_dir.is_symlink() or runs_dir.is_symlink():
            logger.warning("trl-reporter: not writing charts through the symlink %s", self.chart_dir)
            return found
        index: dict[str, Any] = {}
        overlay_inputs: list[tuple[RunRecord, list[int]]] = []
        for run in runs:
            identity = _identity(self._history_path(run.key)) if run.curves else None
            if identity is None:
                continue
            if "loss" in run.curves:
                overlay_inputs.append((run, identity))
            target = runs_dir / f"{run.key}.svg"
            stamp = [self._digest, run.run_name, identity]
            if self._fresh(f"run:{run.key}", stamp, target) or self._write_run(run, target):
                index[f"run:{run.key}"] = [*stamp, _identity(target)]
                found.runs[run.key] = f"{quote(self.chart_dir.name)}/runs/{quote(run.key)}.svg"
        overlay_inputs = overlay_inputs[-charts.MAX_OVERLAY_RUNS :]
        target = self.chart_dir / OVERLAY
        stamp = [self._digest, [[r.key, r.run_name, i] for r, i in overlay_inputs]]
        if overlay_inputs and (self._fresh("overlay", stamp, target) or self._write_overlay(overlay_inputs, target)):
            index["overlay"] = [*stamp, _identity(target)]
            found.overlay = f"{quote(self.chart_dir.name)}/{OVERLAY}"
        self._prune(runs_dir, set(found.runs), keep_overlay=found.overlay is not None)
        if index != self._index:
            self._write_index(index)
        return found

    def _fresh(self, name: str, stamp: list[Any], target: Path) -> bool:
        entry = self._index.get(name)
        return isinstance(entry, list) and entry[:-1] == stamp and entry[-1] == _identity(target) is not None

    def _write_run(self, run: RunRecord, target: Path) -> bool:
        history = self._load_history(run.key)
        data = charts.run_chart(f"{run.run_name}: loss by step", history.series) if history else None
        return data is not None and self._write(target, self._draw(data))

    def _write_overlay(self, inputs: list[tuple[RunRecord, list[int]]], target: Path) -> bool:
        lines = []
        for run, _ in inputs:
            history = self._load_history(run.key)
            if history is not None:
                lines.append((run.run_name, history.series.get("loss", [])))
        data = charts.overlay_chart("Training loss of every run", lines)
        return data is not None and self._write(target, self._draw(data))

    def _write(self, target: Path, svg: str) -> bool:
        try:
            if target.read_text(encoding="utf-8") == svg:
                return True
        except (OSError, ValueError):
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write(target, svg, durable=False)  # redrawn from the state if a crash tears it
        self.written += 1
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
        return data if isinstance(data, dict) else {}

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
