"""Each run's part of a report, rendered once and reused while the run is unchanged.

A run's section and its rows of the experiment's evaluations table are made from the run's view
data, the templates and the rendering code, and nothing else; the digest of all of these names a
cache entry, kept in memory and in this user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``,
under ``trl-reporter/sections/``), one folder per experiment. An experiment of a thousand runs then
re-renders only the runs that changed. The cache is never inside the report directory: what is
there is committed, merged and pulled, and a cached section is emitted as it is, so it must never
come from a stranger. A cache entry that cannot be read or written only costs the next render its
time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from markupsafe import Markup

from . import _fs


def cache_dir_for(state_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """This user's cache folder for the experiment whose state is in ``state_dir``."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = hashlib.sha256(str(state_dir.resolve()).encode("utf-8", "backslashreplace")).hexdigest()[:24]
    return Path(base) / "trl-reporter" / "sections" / name


# What each run contributes to the page, one macro of run.md.j2 each.
PART_MACROS = ("section", "evaluation_rows", "summary_row")
Parts = tuple[Markup, ...]


class _Owner(Protocol):
    """What the parts need from the renderer: its memory, its digest and its run macros."""

    _memory: dict[str, Parts]

    def digest(self) -> str: ...

    def _run_module(self) -> Any: ...


class RunParts:
    """Each run's (section, evaluation rows), produced on first use, from the caches if there."""

    def __init__(self, renderer: _Owner, runs: dict[str, dict[str, Any]], cache_dir: Path | None) -> None:
        self._renderer = renderer
        self.runs = runs
        self._cache_dir = cache_dir
        self._used: set[str] = set()
        self._done: dict[str, Parts] = {}

    def view(self, index: int) -> PartView:
        return PartView(self, index)

    def run_keys(self) -> Iterator[str]:
        return iter(self.runs)

    def get(self, key: str) -> Parts:
        if key not in self._done:
            self._done[key] = self._produce(self.runs[key])
        return self._done[key]

    def _produce(self, run: dict[str, Any]) -> Parts:
        # The view's data is plain and built in a fixed order, so its repr identifies it.
        digest = hashlib.sha256((self._renderer.digest() + repr(run)).encode("utf-8", "surrogatepass")).hexdigest()
        self._used.add(digest)
        memory = self._renderer._memory
        if digest in memory:
            return memory[digest]
        found = self._read(digest)
        if found is None:
            module = self._renderer._run_module()
            found = tuple(Markup(getattr(module, name)(run)) for name in PART_MACROS)
            self._write(digest, found)
        if len(memory) > 4 * len(self.runs) + 64:
            memory.clear()
        memory[digest] = found
        return found

    def _read(self, digest: str) -> Parts | None:
        if self._cache_dir is None:
            return None
        try:
            data = json.loads((self._cache_dir / f"{digest}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not (isinstance(data, list) and len(data) == len(PART_MACROS) + 1 and all(isinstance(p, str) for p in data)):
            return None
        *parts, check = data
        if check != _check(digest, parts):
            return None  # torn by a crash (cache writes skip fsync), or not written by us
        return tuple(Markup(part) for part in parts)

    def _write(self, digest: str, parts: Parts) -> None:
        if self._cache_dir is None:
            return
        texts = [str(part) for part in parts]
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            entry = json.dumps([*texts, _check(digest, texts)])
            _fs.atomic_write(self._cache_dir / f"{digest}.json", entry, durable=False)
        except OSError:
            pass  # a cache that cannot be written only costs the next render its time

    def prune(self) -> None:
        """Remove entries no run used, once they outnumber the runs: an experiment's cache stays
        about its own size."""
        if self._cache_dir is None:
            return
        _fs.clean_temp_files(self._cache_dir)
        try:
            entries = list(self._cache_dir.glob("*.json"))
        except OSError:
            return
        if len(entries) > 2 * len(self.runs) + 64:
            for entry in entries:
                if entry.stem not in self._used:
                    try:
                        entry.unlink()
                    except OSError:
                        pass


class PartView(Mapping[str, Markup]):
    """``sections``, ``evaluation_rows`` or ``summary_rows`` as the page template reads them: by
    run key."""

    def __init__(self, parts: RunParts, index: int) -> None:
        self._parts = parts
        self._index = index

    def __getitem__(self, key: str) -> Markup:
        if key not in self._parts.runs:
            raise KeyError(key)
        try:
            return self._parts.get(key)[self._index]
        except (TypeError, LookupError) as exc:
            # jinja reads a TypeError or LookupError from a subscript as "no such item" and tries
            # an attribute instead, hiding the real error: name it.
            raise RuntimeError(f"rendering run {key!r} failed: {exc!r}") from exc

    def __iter__(self) -> Iterator[str]:
        return self._parts.run_keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._parts.run_keys())


def _check(digest: str, parts: list[str]) -> str:
    return hashlib.sha256("\0".join([digest, *parts]).encode("utf-8", "surrogatepass")).hexdigest()
