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
            data = read_json(path)
            if data is None:
                logger.warning("trl-reporter: skipping unreadable run state %s", path)
                continue
            try:
                runs.append(RunRecord.from_dict(data))
            except (TypeError, ValueError, KeyError) as exc:
                logger.warning("trl-reporter: skipping run state %s: %s", path, exc)
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
                try:
                    run.evaluations.append(Evaluation(**{k: v for k, v in row.items() if k in _EVALUATION_FIELDS}))
                except TypeError:
                    logger.warning("trl-reporter: skipping an unreadable evaluation in %s", name)

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

    def find_run(self, name: str) -> RunRecord:
        """The run called ``name`` (or whose state file is ``name``); the latest if the name was
        reused. Looks at that run's own files first, so it costs the same at any size."""
        base = slug(name)
        latest, key, n = None, base, 1
        while self.run_path(key).exists():
            record = self.load_run(key)
            if record is not None and record.run_name == name:
                latest = record
            n += 1
            key = f"{base}-{n}"
        if latest is None:
            latest = self.load_run(name) if self.run_path(name).exists() and slug(name) == name else None
        if latest is None:
            known = ", ".join(sorted({r.run_name for r in self.load_runs()})) or "none"
            raise StoreError(f"experiment {self.experiment!r} has no run {name!r}; its runs: {known}")
        return latest


    def load_run(self, run_key: str) -> RunRecord | None:
        data = read_json(self.run_path(run_key))
        return RunRecord.from_dict(data) if data is not None else None

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
