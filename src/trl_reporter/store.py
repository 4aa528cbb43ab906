"""Durable experiment state: one JSON file per run, a lock, and the rendered markdown.

Layout inside the report directory::

    <slug>.md                              the report (a view, always rebuilt from the state)
    .trl-reporter/<slug>/experiment.json   the experiment's real name
    .trl-reporter/<slug>/runs/<run>.json   one file per run, written only by that run's process
    .trl-reporter/<slug>/.lock             serialises rendering between processes (not committed)

One file per run means concurrent writers never overwrite each other's runs, and two git branches
that each add a run merge without conflicts. The lock is only needed to render, and is always
taken with a timeout: if it is not had in time, the run's own state is still saved and the next
writer brings the markdown up to date.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import filelock

from . import _fs
from .naming import slug
from .records import SCHEMA_VERSION, RunRecord
from .redact import scrub

logger = logging.getLogger(__name__)

STATE_DIR = ".trl-reporter"
_GITIGNORE = "*.lock\n.*.tmp\n"


class StoreError(RuntimeError):
    """The store cannot be used as asked (a name clash that cannot be resolved, bad state)."""


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
                    _fs.atomic_write(meta, _dumps({"schema": SCHEMA_VERSION, "name": self.experiment}))
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

    def _write_gitignore(self) -> None:
        ignore = self.root / STATE_DIR / ".gitignore"
        if not ignore.exists():
            _fs.atomic_write(ignore, _GITIGNORE)

    def run_path(self, run_key: str) -> Path:
        return self.runs_dir / f"{run_key}.json"

    # -- runs ------------------------------------------------------------------------------------

    def load_runs(self) -> list[RunRecord]:
        """Every saved run, oldest first. Unreadable files are skipped with a warning."""
        runs: list[RunRecord] = []
        try:
            paths = sorted(self.runs_dir.glob("*.json"))
        except OSError:
            return runs
        for path in paths:
            data = read_json(path)
            if data is None:
                logger.warning("trl-reporter: skipping unreadable run state %s", path)
                continue
            try:
                runs.append(RunRecord.from_dict(data))
            except (TypeError, ValueError, KeyError) as exc:
                logger.warning("trl-reporter: skipping run state %s: %s", path, exc)
        runs.sort(key=lambda r: (r.started_at, r.run_id))
        return runs

    def load_run(self, run_key: str) -> RunRecord | None:
        data = read_json(self.run_path(run_key))
        return RunRecord.from_dict(data) if data is not None else None

    def save_run(self, record: RunRecord) -> None:
        """Durably save one run's state (no lock needed: each run file has a single writer)."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write(self.run_path(record.run_id), _dumps(scrub(record.to_dict())))

    # -- report ----------------------------------------------------------------------------------

    def render(self, renderer: Callable[[str, list[RunRecord]], str], *, timeout: float) -> bool:
        """Re-render the markdown from the saved state under the lock.

        Returns False when the lock was not had within ``timeout`` seconds; the report is then
        left for the next writer.
        """
        try:
            with self.lock(timeout):
                self.render_locked(renderer)
        except filelock.Timeout:
            return False
        return True

    def render_locked(self, renderer: Callable[[str, list[RunRecord]], str]) -> None:
        """Re-render the markdown; the caller holds :meth:`lock`."""
        _fs.atomic_write(self.report_path, renderer(self.experiment, self.load_runs()))

    def lock(self, timeout: float) -> filelock.BaseFileLock:
        """The experiment's inter-process lock; raises ``filelock.Timeout`` after ``timeout`` s."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.lock_path, timeout=timeout)

    def clean_debris(self) -> int:
        """Remove temporary files left by writers that were killed mid-write."""
        return sum(_fs.clean_temp_files(d) for d in (self.root, self.state_dir, self.runs_dir))


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_key(store: ExperimentStore, run_name: str, *, resuming: bool) -> tuple[str, RunRecord | None]:
    """Choose the state file of a starting run.

    Returns the key and, when the run resumes a saved run of the same name, that run's record
    (the latest one, if the name was used more than once). A new run whose name is already taken
    gets a numbered key; the title's timestamp tells the two apart. Call it under the experiment
    lock so that two processes cannot claim the same key.
    """
    base = slug(run_name)
    latest: tuple[str, RunRecord] | None = None
    key, n = base, 1
    while store.run_path(key).exists():
        record = store.load_run(key)
        if record is not None and record.run_name == run_name:
            latest = (key, record)
        n += 1
        key = f"{base}-{n}"
    if resuming and latest is not None:
        return latest
    return key, None
