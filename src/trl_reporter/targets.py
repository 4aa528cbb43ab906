"""The places a report is published to, and one push to each.

- A **directory** (a mounted bucket volume, NFS, a synced folder): the local state is merged into
  the directory's by :mod:`~trl_reporter.merge`, so runs from several jobs into one directory all
  stay, and the markdown is rendered there.
- A **Hub repo**: the same, in a private mirror folder that first takes the repo's state (and
  drops what the repo no longer has), then one commit of what changed. After the commit the repo
  is listed again: if another writer's commit replaced this run's file meanwhile (two Jobs that
  chose the same name), the push is made again, and the merge gives this run a free key.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import hubsync, sections
from .destinations import Destination, Directory, Remote
from .errors import DestinationError
from .merge import merge_experiment
from .store import STATE_DIR, ExperimentStore, RenderFn

_RENDER_TIMEOUT = 5.0
_BOOKKEEPING = (".lock", ".generation", ".rendered")
_HUB_ATTEMPTS = 3


class Target:
    """One place a report is published to.

    Args:
        destination: where.
        label: how the report names it (default: the destination itself).
        heartbeats: whether it takes the once-a-minute heartbeat (a directory) or not.
        tidy: remove the local bookkeeping (lock, change counter) after each push, for a folder
            that is uploaded as it is (``output_dir``, which the Trainer pushes).
    """

    def __init__(
        self, destination: Destination, label: str | None = None, *, heartbeats: bool = True, tidy: bool = False
    ) -> None:
        self.destination = destination
        self.label = label or destination.label
        self.is_hub = isinstance(destination, Remote)
        self.heartbeats = heartbeats
        self.tidy = tidy
        self.mapping: dict[str, str] = {}  # local run key -> its key there
        self.pushes = 0
        self._mirror: Path | None = None

    def push(
        self, store: ExperimentStore, render: RenderFn, keys: set[str] | None, own: str, deadline: hubsync.Deadline
    ) -> None:
        """Publish ``store``'s runs (only ``keys``, when given) there; ``own`` is the local key
        of the run that publishes."""
        if isinstance(self.destination, Directory):
            self._merge_and_render(store, self.destination.path, render, keys)
            if self.tidy:
                _remove_bookkeeping(ExperimentStore(self.destination.path, store.experiment))
            self.pushes += 1
            return
        remote = self.destination
        client = hubsync.api()
        if self._mirror is None:
            self._mirror = Path(tempfile.mkdtemp(prefix="trl-reporter-mirror-"))
        for _ in range(_HUB_ATTEMPTS):
            files = hubsync.listing(remote, client, deadline)
            there = ExperimentStore(self._mirror, store.experiment)
            hubsync.prune(self._mirror, files, {there.slug})
            hubsync.fetch_state(remote, self._mirror, files, client, deadline, {there.slug})
            self._merge_and_render(store, self._mirror, render, keys)
            message = f"trl-reporter: {store.experiment}"
            sent = hubsync.upload(remote, self._mirror, report_files(there), files, client, deadline, message)
            self.pushes += 1 if sent else 0
            mine = self.mapping.get(own)
            if not sent or mine is None or self._landed(there, mine, client, deadline):
                return
        raise DestinationError(f"another writer kept replacing run files in {remote.label}; trying again later")

    def _landed(self, there: ExperimentStore, key: str, client: object, deadline: hubsync.Deadline) -> bool:
        """Whether the repo holds this run's file as it was sent."""
        assert isinstance(self.destination, Remote)
        relative = str(there.run_path(key).relative_to(there.root))
        data = (there.root / relative).read_bytes()
        return hubsync.listing(self.destination, client, deadline).get(relative) == hubsync.blob_id(data)

    def _merge_and_render(self, store: ExperimentStore, root: Path, render: RenderFn, keys: set[str] | None) -> None:
        there = ExperimentStore(root, store.experiment)
        merged = merge_experiment(store, there, keys=keys, mapping=self.mapping)
        if merged.changed or there.is_behind():
            there.render(render, timeout=_RENDER_TIMEOUT)

    def close(self) -> None:
        if self._mirror is not None:
            for meta in self._mirror.glob(f"{STATE_DIR}/*/experiment.json"):
                shutil.rmtree(sections.cache_dir_for(meta.parent), ignore_errors=True)
            shutil.rmtree(self._mirror, ignore_errors=True)
            self._mirror = None


def _remove_bookkeeping(store: ExperimentStore) -> None:
    for name in _BOOKKEEPING:
        (store.state_dir / name).unlink(missing_ok=True)


def report_files(store: ExperimentStore) -> list[str]:
    """The report's files, relative to its root: the markdown, the charts and the saved state
    (not the local bookkeeping: lock, change counter, temporary files)."""
    root = store.root
    found = [store.report_path, root / STATE_DIR / ".gitignore", store.meta_path]
    found += store.chart_dir.rglob("*.svg")
    for folder, pattern in (
        (store.runs_dir, "*.json"),
        (store.runs_dir, "*.patch"),
        (store.state_dir / "history", "*.json"),
    ):
        found += folder.glob(pattern)
    found += store.evals_dir.glob("*/*.json")
    return sorted(
        str(p.relative_to(root))
        for p in found
        if not p.name.startswith(".") or p.name == ".gitignore"
        if p.is_file() and not p.is_symlink() and p.stat().st_size > 0
    )
