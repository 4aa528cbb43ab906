"""Finding things by name: the experiments under a report directory, a run of an experiment, and
the state file a starting run claims.

Names come from people (a CLI argument, ``run_name``); keys are file-name stems, unique within an
experiment. A run is named by its key, else by its name when no other run shares it; an experiment
by its name or its report file's name.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import detect, liveness
from ._fs import read_json
from .errors import StoreError
from .naming import is_safe_key, slug
from .records import RunRecord
from .runfiles import warn_skip
from .store import STATE_DIR, ExperimentStore

logger = logging.getLogger(__name__)

# At most this many runs are listed when a name matches none; the rest are counted.
_LISTED = 20


def experiments(root: Path) -> list[ExperimentStore]:
    """Every experiment saved under ``root``, by name."""
    found = []
    for meta in sorted((root / STATE_DIR).glob("*/experiment.json")):
        name = (read_json(meta) or {}).get("name")
        if not isinstance(name, str) or not name or len(name) > 10_000:
            warn_skip(meta, "it holds no experiment name")
            continue
        try:
            store = ExperimentStore(root, name, create=False)
        except StoreError as exc:  # a symlink where its state should be: not this experiment
            warn_skip(meta.parent, str(exc))
            continue
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


def runs_named(store: ExperimentStore, name: str) -> list[RunRecord]:
    """Saved runs called ``name``, oldest first, found by probing their keys (``<slug>``,
    ``<slug>-2``, ...): the cost does not grow with the experiment."""
    base, found, n = slug(name), [], 1
    key = base
    while store.run_path(key).exists():
        record = store.load_run(key)
        if record is not None and record.run_name == name:
            found.append(record)
        n += 1
        key = f"{base}-{n}"
    return found


def find_run(store: ExperimentStore, name: str) -> RunRecord:
    """The run whose key is ``name``, else the one run called ``name``.

    A key names one file, so it is looked up first, in one read. Otherwise every run called
    ``name`` is found, wherever its file is (see :func:`_runs_called`), and a name that several
    runs share is refused: picking one would add a score to a run nobody chose. Raises
    :class:`StoreError` listing the keys to choose from, or the runs that exist.
    """
    if is_safe_key(name) and store.run_path(name).exists():
        record = store.load_run(name)
        if record is not None:
            return record
    called = _runs_called(store, name)
    if len(called) == 1:
        return called[0]
    if called:
        keys = ", ".join(r.key for r in called)
        raise StoreError(
            f"run name {name!r} is shared by {len(called)} runs of experiment {store.experiment!r}; "
            f"name one by its key: {keys}"
        )
    runs = sorted(((s.facts["name"], s.facts["key"]) for s in store.sources()), key=lambda r: r[0])
    listed = [run if key == run else f"{run} (key {key})" for run, key in runs[:_LISTED]]
    more = f", and {len(runs) - _LISTED} more" if len(runs) > _LISTED else ""
    known = ", ".join(listed) + more or "none"
    raise StoreError(f"experiment {store.experiment!r} has no run {name!r}; its runs: {known}")


def _runs_called(store: ExperimentStore, name: str) -> list[RunRecord]:
    """Every saved run called ``name``, oldest first.

    Runs trl-reporter starts are saved at ``<slug>``, ``<slug>-2``, ... (what :func:`runs_named`
    probes), but a run file can sit elsewhere: a gap left by a deleted file, a key from an older
    trl-reporter (``<slug>-<pid>``), a run renamed by hand or by a merge. So every run's facts
    (:meth:`ExperimentStore.sources`, read again only for files that changed) are searched, and
    only the runs they name are loaded and checked.
    """
    found = []
    for source in store.sources():
        if source.facts["name"] == name:
            record = store.load_run(source.facts["key"])
            if record is not None and record.run_name == name:
                found.append(record)
    return sorted(found, key=lambda r: (r.started_at, r.key))


def claim_run(
    store: ExperimentStore,
    run_name: str,
    *,
    resuming: bool,
    generated: bool,
    same: tuple[str, str] | None = None,
) -> tuple[str, str, RunRecord | None]:
    """Claim the state file of a starting run: ``(key, run name, resumed record or None)``.

    A run that resumes continues the run its checkpoint names (``same``: its key and run_id,
    whatever this train() is called), else the latest saved run of its name. Any other run claims
    the first free key by creating its file exclusively (``O_EXCL``), which no two processes can
    both do, so concurrent starts never share a run, with or without the lock. A taken name gets
    a numbered key; a name trl-reporter made up (``run-<unix seconds>``) gets the number in the
    name too.
    """
    if resuming:
        found = _run_with_id(store, *same) if same is not None else None
        # Another process of this machine still trains it (two trainings resumed from one
        # checkpoint, say): this one is a run of its own.
        if found is not None and not _alive_here(found):
            return found.key, found.run_name, found
        named = runs_named(store, run_name)
        if named:
            return named[-1].key, run_name, named[-1]
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    base, n = slug(run_name), 1
    while True:
        name = run_name if n == 1 or not generated else f"{run_name}-{n}"
        key = base if n == 1 else (slug(name) if generated else f"{base}-{n}")
        if store.create_exclusive(key):
            return key, name, None
        n += 1


def _run_with_id(store: ExperimentStore, key: str, run_id: str) -> RunRecord | None:
    """The saved run whose ``run_id`` this is: under ``key`` (where it was), else anywhere in
    the experiment (a pull may have renamed it)."""
    try:
        record = store.load_run(key) if is_safe_key(key) else None
    except OSError:
        record = None
    if record is not None and record.run_id == run_id:
        return record
    for record in store.load_runs():
        if record.run_id == run_id:
            return record
    return None


def _alive_here(run: RunRecord) -> bool:
    """A run In Progress whose process runs on this machine now. (Runs of other machines are
    not known to be alive: a requeue on another node continues them.)"""
    host = detect.host()
    return not run.status.is_final and run.host == host and not liveness.vanished(run, host, detect.host_id())
