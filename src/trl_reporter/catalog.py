"""Finding things by name: the experiments under a report directory, a run of an experiment, and
the state file a starting run claims.

Names come from people (a CLI argument, ``run_name``); keys are file-name stems. A run can be
named by its name or its key; an experiment by its name or its report file's name.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ._fs import read_json
from .errors import StoreError
from .naming import slug
from .records import RunRecord
from .store import STATE_DIR, ExperimentStore, warn_skip

logger = logging.getLogger(__name__)


def experiments(root: Path) -> list[ExperimentStore]:
    """Every experiment saved under ``root``, by name."""
    found = []
    for meta in sorted((root / STATE_DIR).glob("*/experiment.json")):
        name = (read_json(meta) or {}).get("name")
        if not isinstance(name, str) or not name or len(name) > 10_000:
            warn_skip(meta, "it holds no experiment name")
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
    """The run called ``name`` (or whose key is ``name``); the latest if the name was reused."""
    named = runs_named(store, name)
    if named:
        return named[-1]
    runs = store.load_runs()
    matches = [r for r in runs if r.run_name == name] or [r for r in runs if r.key == name]
    if not matches:
        known = ", ".join(sorted({r.run_name for r in runs})) or "none"
        raise StoreError(f"experiment {store.experiment!r} has no run {name!r}; its runs: {known}")
    return matches[-1]


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
