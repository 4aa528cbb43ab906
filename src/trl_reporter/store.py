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

import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import filelock

from . import _fs
from .naming import slug
from .records import SCHEMA_VERSION, Evaluation, RunRecord, json_safe
from .redact import scrub

logger = logging.getLogger(__name__)

STATE_DIR = ".trl-reporter"
_EVALUATION_FIELDS = {f.name for f in dataclasses.fields(Evaluation)}
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

    @property
    def meta_path(self) -> Path:
        return self.state_dir / "experiment.json"

    @property
    def template(self) -> str | None:
        """The user template this experiment is rendered with, if one was given."""
        template = (read_json(self.meta_path) or {}).get("template")
        return template if isinstance(template, str) else None

    def remember_template(self, template: str | None) -> None:
        """Record the template, so that the CLI and other writers render with it too."""
        if template != self.template:
            meta = {"schema": SCHEMA_VERSION, "name": self.experiment}
            if template:
                meta["template"] = template
            _fs.atomic_write(self.meta_path, _dumps(meta))

    def _write_gitignore(self) -> None:
        ignore = self.root / STATE_DIR / ".gitignore"
        if not ignore.exists():
            _fs.atomic_write(ignore, _GITIGNORE)

    def run_path(self, run_key: str) -> Path:
        return self.runs_dir / f"{run_key}.json"

    @property
    def evals_dir(self) -> Path:
        return self.state_dir / "evals"

    # -- runs ------------------------------------------------------------------------------------

    def load_runs(self) -> list[RunRecord]:
        """Every saved run, oldest first. Unreadable files are skipped with a warning."""
        runs: list[RunRecord] = []
        try:
            paths = sorted(self.runs_dir.glob("*.json"))
        except OSError:
            return runs
        for path in paths:
            record = self._read_run(path)
            if record is not None:
                runs.append(record)
        runs.sort(key=lambda r: (r.started_at, r.run_id))
        self._attach_evaluations(runs)
        return runs

    def _attach_evaluations(self, runs: list[RunRecord]) -> None:
        """Add the evaluations stored beside each run (API, CLI, imported results)."""
        by_key = {r.run_id: r for r in runs}
        batches: list[tuple[str, RunRecord, list[dict]]] = []
        for path in self.evals_dir.glob("*/*.json"):
            run = by_key.get(path.parent.name)
            data = read_json(path) if run is not None else None
            if run is None or data is None or not isinstance(data.get("evaluations"), list):
                continue
            batches.append((path.name, run, data["evaluations"]))
        for name, run, rows in sorted(batches, key=lambda b: b[0]):
            for row in rows:
                evaluation = _evaluation_from(row)
                if evaluation is None:
                    logger.warning("trl-reporter: skipping an unreadable evaluation in %s", name)
                else:
                    run.evaluations.append(evaluation)

    def add_evaluations(self, run_key: str, evaluations: list[Evaluation]) -> None:
        """Save evaluations of a run as one new file: no read-modify-write, so concurrent adds
        lose nothing, and git branches that each add scores merge without conflicts."""
        directory = self.evals_dir / run_key
        self._refuse_symlinks(self.evals_dir, directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for evaluation in evaluations:
            evaluation.added_at = evaluation.added_at or now
        # Names sort by time, so evaluations keep the order they were added in.
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        rows = [json_safe(dataclasses.asdict(e)) for e in evaluations]
        _fs.atomic_write(directory / name, _dumps(scrub({"schema": SCHEMA_VERSION, "evaluations": rows})))

    def runs_named(self, name: str) -> list[RunRecord]:
        """Saved runs called ``name``, oldest first, found by probing their keys (``<slug>``,
        ``<slug>-2``, ...): the cost does not grow with the experiment."""
        base, found, n = slug(name), [], 1
        key = base
        while self.run_path(key).exists():
            record = self.load_run(key)
            if record is not None and record.run_name == name:
                found.append(record)
            n += 1
            key = f"{base}-{n}"
        return found

    def create_exclusive(self, run_key: str) -> bool:
        """Create the run's (empty) state file if nobody has; False if it exists already."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(self.run_path(run_key), flags, 0o644))
        except FileExistsError:
            return False
        return True

    def find_run(self, name: str) -> RunRecord:
        """The run called ``name`` (or whose state file is ``name``); the latest if the name was
        reused."""
        named = self.runs_named(name)
        if named:
            return named[-1]
        runs = self.load_runs()
        matches = [r for r in runs if r.run_name == name] or [r for r in runs if r.run_id == name]
        if not matches:
            known = ", ".join(sorted({r.run_name for r in runs})) or "none"
            raise StoreError(f"experiment {self.experiment!r} has no run {name!r}; its runs: {known}")
        return matches[-1]


    def load_run(self, run_key: str) -> RunRecord | None:
        return self._read_run(self.run_path(run_key))

    @staticmethod
    def _read_run(path: Path) -> RunRecord | None:
        """A run's record; ``None``, with a warning, for a file that cannot be one (an empty file
        is a run being claimed this instant, and is skipped silently)."""
        try:
            if path.stat().st_size == 0:
                return None
        except OSError:
            return None
        data = read_json(path)
        if data is None:
            logger.warning("trl-reporter: skipping unreadable run state %s", path)
            return None
        try:
            return RunRecord.from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            logger.warning("trl-reporter: skipping run state %s: %s", path, exc)
            return None

    def save_run(self, record: RunRecord) -> None:
        """Durably save one run's state (no lock needed: each run file has a single writer).

        Only the trainer's own evaluations belong to the run file; the others live beside it.
        """
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        data = record.to_dict()
        data["evaluations"] = [e for e in data["evaluations"] if e.get("source") == "trainer"]
        _fs.atomic_write(self.run_path(record.run_id), _dumps(scrub(data)))

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
        directories = [self.root, self.state_dir, self.runs_dir, self.evals_dir]
        directories += [d for d in self.evals_dir.glob("*") if d.is_dir()]
        return sum(_fs.clean_temp_files(d) for d in directories)


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _evaluation_from(row: object) -> Evaluation | None:
    """An evaluation from its saved form, or ``None`` if the row is not one."""
    if not isinstance(row, dict):
        return None
    try:
        evaluation = Evaluation(**{k: v for k, v in row.items() if k in _EVALUATION_FIELDS})
    except TypeError:
        return None
    if not isinstance(evaluation.benchmark, str) or not isinstance(evaluation.score, (int, float, str)):
        return None
    return evaluation


def experiments(root: Path) -> list[ExperimentStore]:
    """Every experiment saved under ``root``, by name."""
    found = []
    for meta in sorted((root / STATE_DIR).glob("*/experiment.json")):
        name = (read_json(meta) or {}).get("name")
        if isinstance(name, str):
            store = ExperimentStore(root, name, create=False)
            if store.slug == meta.parent.name:
                found.append(store)
    return sorted(found, key=lambda s: s.experiment)


def find_experiment(root: Path, name: str) -> ExperimentStore:
    """The experiment called ``name`` (or whose report file is ``name``/``name.md``)."""
    known = experiments(root)
    stem = name[:-3] if name.endswith(".md") else name
    for store in known:
        if name == store.experiment or stem == store.slug:
            return store
    listed = ", ".join(s.experiment for s in known) or "none"
    raise StoreError(f"no experiment {name!r} in {str(root)!r}; experiments there: {listed}")


def claim_run(
    store: ExperimentStore, run_name: str, *, resuming: bool, generated: bool
) -> tuple[str, str, RunRecord | None]:
    """Claim the state file of a starting run: ``(key, run name, resumed record or None)``.

    A run that resumes continues the latest saved run of its name. Any other run claims the first
    free key by creating its file exclusively (``O_EXCL``), which no two processes can both do, so
    concurrent starts never share a run, with or without the lock. A taken name gets a numbered
    key; a name trl-reporter made up (``run-<unix seconds>``) gets the number in the name too.
    """
    if resuming:
        named = store.runs_named(run_name)
        if named:
            return named[-1].run_id, run_name, named[-1]
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    base, n = slug(run_name), 1
    while True:
        name = run_name if n == 1 or not generated else f"{run_name}-{n}"
        key = base if n == 1 else (slug(name) if generated else f"{base}-{n}")
        if store.create_exclusive(key):
            return key, name, None
        n += 1
