"""Merging one copy of an experiment's saved state into another: ``trl-report pull``, and
publishing to a directory (or to the local mirror of a Hub repo).

One set of rules serves both directions:

- a run is the same run wherever its file went: it is matched by its ``run_id`` (for runs saved
  before there was one: its start time, host, process and name), first under its own key;
- where both sides hold a run, the copy saved more times (its ``revision``) wins, so pulling or
  publishing twice changes nothing, and an older copy never replaces a newer one;
- a run whose key is taken by another run gets the next free key (``<key>-2``, ...), so runs of
  two jobs that chose the same name are both kept;
- evaluations added from outside training are a union: their files have unique names;
- runs the source lacks are kept.

Everything read from the source is read as a stranger's file (:mod:`~trl_reporter.runfiles`) and
written back re-serialised from what was validated: only the state layout is copied, never the
markdown, the charts or anything else, so nothing in a source can name a path or a template.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from ._fs import read_json, read_regular
from .errors import RecordError
from .gitread import MAX_PATCH_BYTES
from .naming import is_safe_key
from .records import Evaluation, RunRecord
from .runfiles import read_run, warn_skip
from .schema import load_evaluation
from .store import ExperimentStore

logger = logging.getLogger(__name__)


@dataclass
class MergeResult:
    """What one merge changed in its target (keys are the target's)."""

    experiment: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    evaluations: int = 0
    runs: list[RunRecord] = field(default_factory=list)  # the source's runs, as merged

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.evaluations)


def identity(run: RunRecord) -> str:
    """What makes a run the same run in two copies of the state."""
    # Runs saved before run_id existed: their start and name (a resumption changes host and pid).
    return run.run_id or f"{run.started_at!r}/{run.run_name}"


def _progress(run: RunRecord) -> tuple[int, bool, float, float, int]:
    # The revision decides; for files saved before revisions existed, how far the run got.
    return (run.revision, run.status.is_final, run.ended_at or 0.0, run.heartbeat_at or 0.0, run.steps_done)


def merge_experiment(
    source: ExperimentStore,
    target: ExperimentStore,
    *,
    keys: Iterable[str] | None = None,
    mapping: MutableMapping[str, str] | None = None,
) -> MergeResult:
    """Merge ``source``'s runs (only ``keys``, when given) and their evaluations into ``target``.

    ``mapping`` remembers source key -> target key between calls, so that a publisher finds its
    run again in one read."""
    result = MergeResult(source.experiment)
    mapping = {} if mapping is None else mapping
    index: dict[str, str] | None = None
    wanted = None if keys is None else set(keys)
    try:
        paths = sorted(source.runs_dir.glob("*.json"))
    except OSError:
        paths = []
    for path in paths:
        if wanted is not None and path.stem not in wanted:
            continue
        run = read_run(path)
        if run is None:
            continue
        origin = identity(run)
        target_key = _same_run(target, mapping.get(run.key), origin) or _same_run(target, run.key, origin)
        if target_key is None:
            if index is None:
                index = {identity(r): r.key for r in target.load_runs()}
            target_key = index.get(origin)
        write = False
        if target_key is None:
            target_key = _free_key(target, run.key)
            result.added.append(target_key)
            write = True
        else:
            existing = target.load_run(target_key)
            if existing is not None and _progress(run) > _progress(existing):
                result.updated.append(target_key)
                write = True
        if write:
            history = source.load_history(run.key)
            patch = _patch(source, run) if run.provenance and run.provenance.code.patch else None
            if patch is None and run.provenance is not None:
                run.provenance.code.patch = False  # no link to a patch that did not come along
            source_key, run.key = run.key, target_key
            try:
                if patch is not None:
                    target.save_patch(target_key, patch)
                target.save_run(run, history, copy=True)
            except BaseException:
                _unclaim(target, target_key)  # a failed copy leaves no empty file behind
                raise
            finally:
                run.key = source_key
        mapping[run.key] = target_key
        result.evaluations += _merge_evaluations(source, run.key, target, target_key)
        result.runs.append(run)
    return result


def _patch(source: ExperimentStore, run: RunRecord) -> str | None:
    """A run's patch, read as a stranger's file: a regular file of at most 1 MiB of UTF-8."""
    data = read_regular(source.patch_path(run.key), MAX_PATCH_BYTES + 4096)
    try:
        return data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        warn_skip(source.patch_path(run.key), "not UTF-8 text")
        return None


def _unclaim(target: ExperimentStore, key: str) -> None:
    path = target.run_path(key)
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _same_run(target: ExperimentStore, key: str | None, origin: str) -> str | None:
    if key is None or not is_safe_key(key):
        return None
    existing = target.load_run(key)
    return key if existing is not None and identity(existing) == origin else None


def _free_key(target: ExperimentStore, key: str) -> str:
    """``key``, or the first of ``key-2``, ``key-3``, ... that nobody has claimed (claimed here)."""
    candidate, n = key, 1
    target.runs_dir.mkdir(parents=True, exist_ok=True)
    while not target.create_exclusive(candidate):
        n += 1
        candidate = f"{key}-{n}"
    return candidate


def _merge_evaluations(source: ExperimentStore, source_key: str, target: ExperimentStore, target_key: str) -> int:
    """Copy the evaluation files of a run that the target lacks; returns how many."""
    folder = source.evals_dir / source_key
    if source.evals_dir.is_symlink() or folder.is_symlink():
        warn_skip(folder, "a symlink, not a folder of evaluations")
        return 0
    try:
        names = sorted(p.name for p in folder.glob("*.json"))
    except OSError:
        return 0
    present = target.evaluation_files(target_key)
    copied = 0
    for name in names:
        if name in present or not is_safe_key(name[: -len(".json")]):
            continue
        rows = _evaluations(folder / name)
        if rows is not None:
            target.add_evaluations(target_key, rows, name=name)
            copied += 1
    return copied


def _evaluations(path: Path) -> list[Evaluation] | None:
    data = read_json(path)
    rows = data.get("evaluations") if data is not None else None
    if not isinstance(rows, list) or not rows:
        warn_skip(path, "not an evaluations file trl-reporter can read")
        return None
    try:
        return [load_evaluation(row) for row in rows]
    except RecordError as exc:
        warn_skip(path, f"an evaluation in it: {exc}")
        return None


def merge_tree(source_root: Path, target_root: Path, experiment: str | None = None) -> list[MergeResult]:
    """Merge every experiment saved under ``source_root`` (or the one named ``experiment``) into
    ``target_root``."""
    sources = catalog.experiments(source_root)
    if experiment is not None:
        sources = [catalog.find_experiment(source_root, experiment)]
    return [merge_experiment(s, ExperimentStore(target_root, s.experiment)) for s in sources]
