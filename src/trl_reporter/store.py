"""Durable experiment state: one JSON file per run, a lock, and the rendered markdown.

Layout inside the report directory::

    <slug>.md                              the report (a view, always rebuilt from the state)
    .trl-reporter/<slug>/experiment.json   the experiment's real name
    .trl-reporter/<slug>/runs/<run>.json   one file per run, written only by that run's process
    .trl-reporter/<slug>/evals/<run>/*.json   evaluations added from outside the training
    .trl-reporter/<slug>/.lock             serialises rendering between processes (not committed)
    .trl-reporter/<slug>/.generation       one byte appended per saved change (not committed)
    .trl-reporter/<slug>/.rendered         what the markdown was last rendered from (not committed)

One file per run means concurrent writers never overwrite each other's runs, and two git branches
that each add a run merge without conflicts. The lock is only needed to render, and is always
taken with a timeout: if it is not had in time, the run's own state is still saved, and whoever
renders next (a writer, or any ``trl-report`` command) sees that the markdown is behind and
brings it up to date.

Every file here may come from a stranger (a commit, a merge, a pull): each is validated on load,
and a file that fails is skipped with a warning that names it. Every path component read from a
file must pass :func:`naming.is_safe_key`, the check that names typed by users pass, so nothing
read can point outside the report directory.
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
from typing import Any

import filelock

from . import _fs
from .naming import is_safe_key, slug
from .records import SCHEMA_VERSION, Evaluation, RecordError, RunRecord, json_safe
from .redact import clean_text, scrub

logger = logging.getLogger(__name__)

STATE_DIR = ".trl-reporter"
_GITIGNORE = "*.lock\n.*.tmp\n.generation\n.rendered\n"
# A render that finds the state changed under it renders again, this many times at most.
_RENDER_ATTEMPTS = 3
# Warn once per process about each bad file (the CLI loads an experiment more than once).
_warned: set[tuple[str, str]] = set()


def _warn_skip(path: Path, why: str) -> None:
    key = (str(path), why)
    if key not in _warned:
        _warned.add(key)
        logger.warning("trl-reporter: skipping %s: %s", clean_text(str(path)), clean_text(why))


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

    def run_path(self, run_key: str) -> Path:
        if not is_safe_key(run_key):
            raise StoreError(f"{run_key!r} is not a safe run key")
        return self.runs_dir / f"{run_key}.json"

    @property
    def generation_path(self) -> Path:
        return self.state_dir / ".generation"

    @property
    def rendered_path(self) -> Path:
        return self.state_dir / ".rendered"

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
            record = self._read_run(path)
            if record is not None:
                runs.append(record)
        runs.sort(key=lambda r: (r.started_at, r.run_id))
        self._attach_evaluations(runs)
        return runs

    def _attach_evaluations(self, runs: list[RunRecord]) -> None:
        """Add the evaluations stored beside each run (API, CLI, imported results)."""
        by_key = {r.run_id: r for r in runs}
        batches: list[tuple[str, RunRecord, Path, list[object]]] = []
        for path in self.evals_dir.glob("*/*.json"):
            run = by_key.get(path.parent.name)
            if run is None:
                continue
            data = read_json(path)
            if not is_safe_key(path.stem) or data is None or not isinstance(data.get("evaluations"), list):
                _warn_skip(path, "not an evaluations file trl-reporter can read")
                continue
            batches.append((path.name, run, path, data["evaluations"]))
        for _, run, path, rows in sorted(batches, key=lambda b: b[0]):
            for row in rows:
                try:
                    run.evaluations.append(Evaluation.from_dict(row))
                except RecordError as exc:
                    _warn_skip(path, f"an evaluation in it: {exc}")

    def add_evaluations(self, run_key: str, evaluations: list[Evaluation]) -> None:
        """Save evaluations of a run as one new file: no read-modify-write, so concurrent adds
        lose nothing, and git branches that each add scores merge without conflicts."""
        if not is_safe_key(run_key):
            raise StoreError(f"{run_key!r} is not a safe run key")
        directory = self.evals_dir / run_key
        self._refuse_symlinks(self.evals_dir, directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for evaluation in evaluations:
            evaluation.added_at = evaluation.added_at or now
        # Names sort by time, so evaluations keep the order they were added in.
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        rows = [json_safe(dataclasses.asdict(e)) for e in evaluations]
        text = _dumps(scrub({"schema": SCHEMA_VERSION, "evaluations": rows}))
        for row in json.loads(text)["evaluations"]:
            Evaluation.from_dict(row)  # never save what would not load back
        _fs.atomic_write(directory / name, text)
        self._bump_generation()

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
        """A run's record; ``None``, with a warning naming the file, for a file that cannot be one
        (an empty file is a run being claimed this instant, and is skipped silently)."""
        try:
            if path.stat().st_size == 0:
                return None
        except OSError:
            return None
        data = read_json(path)
        if data is None:
            _warn_skip(path, "not a JSON object")
            return None
        skipped: list[str] = []
        try:
            record = RunRecord.from_dict(data, skipped)
        except RecordError as exc:
            _warn_skip(path, str(exc))
            return None
        for why in skipped:
            _warn_skip(path, f"an evaluation in it: {why}")
        # The key names the file; a run_id that differs (or climbs out with "../") is not this file's.
        if record.run_id != path.stem or not is_safe_key(record.run_id):
            _warn_skip(path, f"its run_id {record.run_id[:80]!r} does not match the file name")
            return None
        return record

    def save_run(self, record: RunRecord) -> None:
        """Durably save one run's state (no lock needed: each run file has a single writer).

        Only the trainer's own evaluations belong to the run file; the others live beside it.
        What is saved is first read back the way a stranger's file would be: a value that would
        not load is never written.
        """
        path = self.run_path(record.run_id)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        data = record.to_dict()
        data["evaluations"] = [e for e in data["evaluations"] if e.get("source") == "trainer"]
        text = _dumps(scrub(data))
        try:
            RunRecord.from_dict(json.loads(text))
        except RecordError as exc:
            raise StoreError(f"run {record.run_name!r} would not load back ({exc}); not saved") from exc
        _fs.atomic_write(path, text)
        self._bump_generation()

    def _bump_generation(self) -> None:
        """Count a saved change: one appended byte, atomic with ``O_APPEND``, no lock needed."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.generation_path, flags, 0o644)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)

    # -- report ---------------------------------------------------------------------------------

    def render(self, renderer: Callable[[str, list[RunRecord]], str], *, timeout: float) -> bool:
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
                    before = self._state_stamp()
                    self.render_locked(renderer)
                    after = self._state_stamp()
                    if after == before:
                        break
                self._write_rendered(after)
        except filelock.Timeout:
            return False
        return True

    def render_locked(self, renderer: Callable[[str, list[RunRecord]], str]) -> None:
        """Re-render the markdown once; the caller holds :meth:`lock`."""
        _fs.atomic_write(self.report_path, renderer(self.experiment, self.load_runs()))

    def is_behind(self) -> bool:
        """Whether the markdown may lack something that was saved, or was changed by hand or by a
        merge, since it was last rendered. Costs a few ``stat`` calls, not a load."""
        marker = read_json(self.rendered_path)
        return marker is None or marker != self._rendered_marker(self._state_stamp())

    def catch_up(self, renderer: Callable[[str, list[RunRecord]], str], *, timeout: float) -> bool:
        """Render if the markdown is behind its state; True if it is up to date afterwards."""
        return not self.is_behind() or self.render(renderer, timeout=timeout)

    def _state_stamp(self) -> list[object]:
        """What identifies the saved state: the count of changes saved here, and the modification
        times of the folders whose entries every atomic write (and every git checkout) replaces."""
        try:
            generation = self.generation_path.stat().st_size
        except OSError:
            generation = 0
        stamp: list[object] = [generation]
        for directory in (self.runs_dir, self.evals_dir):
            stamp.append(_mtime(directory))
        try:
            with os.scandir(self.evals_dir) as entries:
                stamp.extend(sorted((e.name, e.stat().st_mtime_ns) for e in entries if e.is_dir(follow_symlinks=False)))
        except OSError:
            pass
        return stamp

    def _rendered_marker(self, state: list[object]) -> dict[str, object]:
        return {"state": json.loads(json.dumps(state)), "report": _mtime(self.report_path, size=True)}

    def _write_rendered(self, state: list[object]) -> None:
        _fs.atomic_write(self.rendered_path, _dumps(self._rendered_marker(state)))

    def lock(self, timeout: float) -> filelock.AcquireReturnProxy:
        """The experiment's inter-process lock, re-entrant within a thread of this process;
        raises ``filelock.Timeout`` after ``timeout`` seconds."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.lock_path, is_singleton=True).acquire(timeout=timeout)

    def clean_debris(self) -> int:
        """Remove temporary files left by writers that were killed mid-write."""
        directories = [self.root, self.state_dir, self.runs_dir, self.evals_dir]
        directories += [d for d in self.evals_dir.glob("*") if d.is_dir()]
        return sum(_fs.clean_temp_files(d) for d in directories)


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _mtime(path: Path, *, size: bool = False) -> list[int] | int:
    try:
        st = path.stat()
    except OSError:
        return [0, -1] if size else 0
    return [st.st_mtime_ns, st.st_size] if size else st.st_mtime_ns


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` for anything else (missing, not JSON, not an object,
    nested too deeply to parse)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def experiments(root: Path) -> list[ExperimentStore]:
    """Every experiment saved under ``root``, by name."""
    found = []
    for meta in sorted((root / STATE_DIR).glob("*/experiment.json")):
        name = (read_json(meta) or {}).get("name")
        if not isinstance(name, str) or not name or len(name) > 10_000:
            _warn_skip(meta, "it holds no experiment name")
            continue
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
