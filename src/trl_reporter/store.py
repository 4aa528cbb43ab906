"""Durable experiment state: one JSON file per run, a lock, and the rendered markdown.

Layout inside the report directory::

    <slug>.md                              the report (a view, always rebuilt from the state)
    <slug>/loss.svg, <slug>/runs/<run>.svg  the charts the report shows (see charts)
    .trl-reporter/<slug>/experiment.json   the experiment's real name
    .trl-reporter/<slug>/runs/<run>.json   one file per run, written only by that run's process
    .trl-reporter/<slug>/evals/<run>/*.json   evaluations added from outside the training
    .trl-reporter/<slug>/history/<run>.json   the run's logged curves (read only to draw charts)
    .trl-reporter/<slug>/{.lock,.generation,.rendered}   local bookkeeping (see freshness)

One file per run means concurrent writers never overwrite each other's runs, and two git branches
that each add a run merge without conflicts. The lock is only needed to render, and is always
taken with a timeout: if it is not had in time, the run's own state is still saved, and whoever
renders next brings the markdown up to date.

Every file here may come from a stranger (a commit, a merge, a pull): each is validated on load,
and a file that fails is skipped with a warning that names it. Every path component read from a
file must pass :func:`naming.is_safe_key`, so nothing read can point outside the report directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import filelock

from . import _fs, freshness, sections
from ._fs import read_json
from .chartfiles import Charts, ChartWriter
from .errors import RecordError, StoreError
from .facts import RunSource
from .history import History
from .naming import is_safe_key, slug
from .records import SCHEMA_VERSION, Evaluation, RunRecord, json_safe
from .redact import clean_text, scrub
from .runfiles import attach_evaluations, read_history, read_run
from .schema import load_evaluation, load_run
from .snapshot import Snapshot

logger = logging.getLogger(__name__)

STATE_DIR = ".trl-reporter"
_GITIGNORE = "*.lock\n.*.tmp\n.generation\n.rendered\n"
# A render that finds the state changed under it renders again, this many times at most.
_RENDER_ATTEMPTS = 3


class RenderFn(Protocol):
    """Renders an experiment's markdown from its runs, linking the ``charts`` that exist; may keep
    work it can reuse in ``cache_dir``, a folder of this user's cache (never inside the report
    directory). Draws a chart's SVG from :mod:`~trl_reporter.charts` data."""

    def __call__(
        self,
        experiment: str,
        runs: Sequence[RunRecord | RunSource],
        *,
        cache_dir: Path | None = None,
        charts: Charts | None = None,
    ) -> str: ...

    def draw_chart(self, data: dict[str, Any]) -> str: ...

    def chart_digest(self) -> str: ...


class ExperimentStore:
    """The saved runs and the report of one experiment."""

    def __init__(self, root: Path, experiment: str, *, create: bool = True) -> None:
        self.root = root
        self.experiment = experiment
        self._refuse_symlinks(self.root / STATE_DIR)
        self.slug = self._claim_slug(create=create)
        self._refuse_symlinks(self.state_dir, self.runs_dir)

    # -- paths -----------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR / self.slug

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def report_path(self) -> Path:
        return self.root / f"{self.slug}.md"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / ".lock"

    def _claim_slug(self, *, create: bool) -> str:
        """The experiment's file stem; a second name whose slug is taken gets a hashed one."""
        base = slug(self.experiment)
        for candidate in (base, slug(self.experiment + "\0"), slug(self.experiment + "\0\0")):
            meta = self.root / STATE_DIR / candidate / "experiment.json"
            self._refuse_symlinks(meta.parent)
            owner = read_json(meta)
            if owner is None:
                if create:
                    meta.parent.mkdir(parents=True, exist_ok=True)
                    self._write_gitignore()
                    _fs.atomic_write(meta, _dumps(scrub({"schema": SCHEMA_VERSION, "name": self.experiment})))
                return candidate
            if owner.get("name") == self.experiment:
                return candidate
        raise StoreError(f"no free report file name for experiment {self.experiment!r}")

    @staticmethod
    def _refuse_symlinks(*paths: Path) -> None:
        """Never write through a symlink planted where the state lives (the report file itself
        is safe: ``os.replace`` replaces a symlink instead of following it)."""
        for path in paths:
            if path.is_symlink():
                raise StoreError(f"refusing to write through the symlink {str(path)!r}")

    @property
    def meta_path(self) -> Path:
        return self.state_dir / "experiment.json"

    def _write_gitignore(self) -> None:
        ignore = self.root / STATE_DIR / ".gitignore"
        try:
            current = ignore.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != _GITIGNORE:
            _fs.atomic_write(ignore, _GITIGNORE)

    def run_path(self, key: str) -> Path:
        return self.runs_dir / f"{_checked(key)}.json"

    def history_path(self, key: str) -> Path:
        return self.state_dir / "history" / f"{_checked(key)}.json"  # chartfiles reads it so too

    @property
    def chart_dir(self) -> Path:  # beside the report, so that a relative link finds the charts
        return self.root / self.slug

    @property
    def evals_dir(self) -> Path:
        return self.state_dir / "evals"

    # -- runs ------------------------------------------------------------------------------------

    def load_runs(self) -> list[RunRecord]:
        """Every saved run, oldest first. Files that fail validation are skipped with a warning."""
        runs: list[RunRecord] = []
        try:
            paths = sorted(self.runs_dir.glob("*.json"))
        except OSError:
            return runs
        for path in paths:
            record = read_run(path)
            if record is not None:
                runs.append(record)
        runs.sort(key=lambda r: (r.started_at, r.key))
        attach_evaluations(self.evals_dir, runs)
        return runs

    def add_evaluations(self, key: str, evaluations: list[Evaluation], *, name: str | None = None) -> None:
        """Save evaluations of a run as one new file: no read-modify-write, so concurrent adds
        lose nothing, and git branches that each add scores merge without conflicts. ``name`` is
        the file name of evaluations copied from another copy of the state (see merge)."""
        directory = self.evals_dir / _checked(key)
        self._refuse_symlinks(self.evals_dir, directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for evaluation in evaluations:
            evaluation.added_at = evaluation.added_at or now
        # Names sort by time, so evaluations keep the order they were added in.
        name = name or f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        _checked(name.removesuffix(".json"))
        rows = [json_safe(dataclasses.asdict(e)) for e in evaluations]
        text = _dumps(scrub({"schema": SCHEMA_VERSION, "evaluations": rows}))
        for row in json.loads(text)["evaluations"]:
            load_evaluation(row)  # never save what would not load back
        _fs.atomic_write(directory / name, text)
        freshness.count_change(self.state_dir)

    def evaluation_files(self, key: str) -> set[str]:  # the names of a run's evaluation files
        return {p.name for p in (self.evals_dir / _checked(key)).glob("*.json")}

    def create_exclusive(self, key: str) -> bool:
        """Create the run's (empty) state file if nobody has; False if it exists already."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(self.run_path(key), flags, 0o644))
        except FileExistsError:
            return False
        return True

    def load_run(self, key: str) -> RunRecord | None:
        return read_run(self.run_path(key))

    def save_run(self, record: RunRecord, history: History | None = None, *, copy: bool = False) -> None:
        """Durably save one run's state (no lock needed: each run file has a single writer), and
        its history first when given, so the run file never names curves its history lacks.
        Each save is one more revision, except the ``copy`` of a run merged from elsewhere. Only
        the trainer's own evaluations belong to the run file; the others live beside it. What is
        saved is first read back as a stranger's file would be: what would not load is not written.
        """
        path = self.run_path(record.key)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        if history is not None:
            history_path = self.history_path(record.key)
            self._refuse_symlinks(history_path.parent)
            history_path.parent.mkdir(exist_ok=True)
            _fs.atomic_write(history_path, json.dumps(history.to_dict(), separators=(",", ":")) + "\n")
        record.revision += 0 if copy else 1
        data = record.to_dict()
        data["evaluations"] = [e for e in data["evaluations"] if e.get("source") == "trainer"]
        text = _dumps(scrub(data))
        try:
            load_run(json.loads(text))
        except RecordError as exc:
            raise StoreError(f"run {record.run_name!r} would not load back ({exc}); not saved") from exc
        _fs.atomic_write(path, text)
        freshness.count_change(self.state_dir)

    def patch_path(self, key: str) -> Path:  # the uncommitted changes a run was started with
        return self.runs_dir / f"{_checked(key)}.patch"

    def save_patch(self, key: str, text: str) -> None:
        _fs.atomic_write(self.patch_path(key), scrub(text))

    def load_history(self, key: str) -> History | None:
        """A run's logged curves; ``None``, with a warning naming the file, if they cannot be read."""
        return read_history(self.history_path(key))

    # -- report ---------------------------------------------------------------------------------

    def sources(self) -> list[RunSource]:
        """Every readable run as a render needs it (its facts, read again only for runs whose files
        changed), in start order."""
        return Snapshot(self.runs_dir, self.evals_dir, sections.cache_dir_for(self.state_dir)).sources()

    def render(self, renderer: RenderFn, *, timeout: float, full: bool = False) -> bool:
        """Re-render the markdown from the saved state under the lock.

        A change saved while rendering (by another process, or by a signal handler of this one)
        makes it render again, so the markdown never ends behind what was saved before it was
        written. The lock is re-entrant within this process: a signal handler that interrupts a
        render of the same experiment renders at once instead of waiting on its own process.

        Returns False when the lock was not had within ``timeout`` seconds; the report is then
        left behind its state, for the next writer or ``trl-report`` command to bring up to date.
        """
        try:
            with self.lock(timeout):
                for _ in range(_RENDER_ATTEMPTS):
                    before = freshness.state_stamp(self.state_dir)
                    self.render_locked(renderer, full=full)
                    # Every change saved meanwhile moved the quick part; one made behind trl-reporter's
                    # back (a pull) leaves the report behind the full stamp, caught up next time.
                    if freshness.quick_stamp(self.state_dir) == before[:3]:
                        # Only a render of a state that held still is marked: otherwise the
                        # report stays "behind", and the next writer or command renders again.
                        freshness.mark_rendered(self.state_dir, self.report_path, before)
                        break
        except filelock.Timeout:
            return False
        return True

    def render_locked(self, renderer: RenderFn, *, full: bool = False) -> None:
        """Re-render the charts that changed, then the markdown; the caller holds :meth:`lock`.
        Only runs whose files changed are read again, unless ``full``: then every run is.
        Charts are a view of the state like the markdown: one that cannot be drawn (a full disk, a
        broken chart template) is left out of the report, with a warning, never the report."""
        cache_dir = sections.cache_dir_for(self.state_dir)
        runs: list[RunSource] = [RunSource.of(r) for r in self.load_runs()] if full else self.sources()
        try:
            writer = ChartWriter(
                self.chart_dir,
                self.state_dir / "history",
                self.load_history,
                renderer.draw_chart,
                renderer.chart_digest(),
                cache_dir,
            )
            drawn = writer.update(runs, check=full)
        except Exception as exc:  # noqa: BLE001 - charts never cost the report
            logger.warning("trl-reporter: could not draw the charts of %r: %s", self.experiment, clean_text(str(exc)))
            drawn = Charts(state=f".trl-reporter/{self.chart_dir.name}")  # the patches are still there
        text = renderer(self.experiment, runs, cache_dir=cache_dir, charts=drawn)
        _fs.atomic_write(self.report_path, text)

    def is_behind(self) -> bool:
        """Whether the markdown may lack what was saved, or was changed by hand or by a merge,
        since it was last rendered: a few ``stat`` calls, not a load."""
        return freshness.is_behind(self.state_dir, self.report_path)

    def catch_up(self, renderer: RenderFn, *, timeout: float) -> bool:  # True if up to date after
        return not self.is_behind() or self.render(renderer, timeout=timeout)

    def lock(self, timeout: float) -> AbstractContextManager[object]:
        """The experiment's inter-process lock, re-entrant within a thread; ``filelock.Timeout``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.lock_path, is_singleton=True).acquire(timeout=timeout)

    def clean_debris(self) -> int:
        """Remove temporary files left by writers that were killed mid-write."""
        directories = [self.root, self.state_dir, self.runs_dir, self.evals_dir]
        directories += [d for d in self.evals_dir.glob("*") if d.is_dir()]
        return sum(_fs.clean_temp_files(d) for d in directories)


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _checked(key: str) -> str:
    """A run key that may become a path component (see :func:`naming.is_safe_key`)."""
    if not is_safe_key(key):
        raise StoreError(f"{key!r} is not a safe run key")
    return key
