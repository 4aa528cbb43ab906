"""Every run's facts, kept by the identity of its files, so that a render reads only what changed.

A run's saved state is its file (known by its modification and change times, size and inode:
every write replaces it, and no tool can set a change time) and the folder of evaluations added
beside it (known by its times: every evaluation is a new file in it). While both are unchanged, so are the run's facts
(:mod:`~trl_reporter.facts`), which are kept in memory and in this user's cache folder. An
experiment of a thousand runs then costs a directory scan and one small cache file, and the runs
whose files changed are read, validated and summed up again.

The cache is local bookkeeping, never inside the report directory, and is checked before use: a
cache written by other code, torn by a crash, or edited is ignored, and the facts are read from
the saved state again. ``trl-report render`` does not use it at all.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from . import _fs, facts
from .facts import RunSource, facts_of
from .naming import is_safe_key
from .records import RunRecord
from .runfiles import attach_evaluations, read_run, warn_skip

_FILE = "facts.json"
# An entry for a file that is not a readable run: skipped, and not read again while unchanged.
_UNREADABLE = None
_RACY = "racy:"
_MEMORY: dict[str, tuple[str, dict[str, _Entry]]] = {}


def _code() -> str:
    return f"{facts.VERSION}-{_fs.code_digest()}"


def _identities(runs_dir: Path, evals_dir: Path) -> dict[str, tuple[str, bool]]:
    """``run key -> (identity, racy)`` of every run file and its evaluations folder; racy when
    one of them changed so recently that it may change again unseen (see :func:`_fs.racy`)."""
    folders: dict[str, tuple[str, int]] = {}
    try:
        with os.scandir(evals_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    folders[entry.name] = (f"{st.st_mtime_ns}.{st.st_ctime_ns}", max(st.st_mtime_ns, st.st_ctime_ns))
    except OSError:
        pass
    found: dict[str, tuple[str, bool]] = {}
    try:
        with os.scandir(runs_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    key = entry.name[:-5]
                    if not is_safe_key(key):
                        warn_skip(Path(entry.path), "its name is not a run key trl-reporter writes")
                        continue
                    st = entry.stat(follow_symlinks=False)
                    # ctime too: no tool can set it, so a file replaced with the same size and a
                    # copied modification time (rsync -a, tar) still has a new identity.
                    folder, changed = folders.get(key, ("-", 0))
                    identity = f"{st.st_mtime_ns}.{st.st_ctime_ns}.{st.st_size}.{st.st_ino}/{folder}"
                    found[key] = (identity, _fs.racy(st.st_mtime_ns, st.st_ctime_ns, changed))
    except OSError:
        pass
    return found


class Snapshot:
    """The facts of one experiment's runs, brought up to date with its files."""

    def __init__(self, runs_dir: Path, evals_dir: Path, cache_dir: Path | None) -> None:
        self.runs_dir = runs_dir
        self.evals_dir = evals_dir
        self._cache = cache_dir / _FILE if cache_dir is not None else None
        self.read = 0  # run files read in full by the last call

    def sources(self) -> list[RunSource]:
        """Every readable run, in start order, with its facts and its identity."""
        identities = _identities(self.runs_dir, self.evals_dir)
        known = self._known()
        current: dict[str, _Entry] = {}
        self.read = 0
        for key, (identity, racy) in identities.items():
            entry = known.get(key)
            if entry is None or entry.identity != identity:
                record = self._load(key)
                self.read += 1
                # A racy identity is kept under a name no scan gives, so it is read again next time.
                entry = _Entry(_RACY + identity if racy else identity, facts_of(record) if record else _UNREADABLE)
            current[key] = entry
        if current.keys() != known.keys() or self.read:
            self._keep(current)
        sources = [
            # No identity for a racy run: its parts are keyed by its whole data, not by its files.
            RunSource(e.facts, None if e.identity.startswith(_RACY) else e.identity, self._loader(key))
            for key, e in current.items()
            if e.facts is not None
        ]
        sources.sort(key=lambda s: (s.facts["started"], s.facts["key"]))
        return sources

    def _load(self, key: str) -> RunRecord | None:
        """A run with its evaluations attached; ``None`` (with a warning) if it cannot be read."""
        record = read_run(self.runs_dir / f"{key}.json")
        if record is not None:
            attach_evaluations(self.evals_dir, [record])
        return record

    def _loader(self, key: str) -> Any:
        def load() -> RunRecord:
            record = self._load(key)
            if record is None:
                raise FileNotFoundError(f"run {key!r} changed while its report was rendered")
            return record

        return load

    # -- the cache -------------------------------------------------------------------------------

    def _known(self) -> dict[str, _Entry]:
        memory = _MEMORY.get(str(self.runs_dir))
        if memory is not None and memory[0] == _code():
            return memory[1]
        if self._cache is None:
            return {}
        try:
            header, _, body = self._cache.read_bytes().partition(b"\n")
            if header != _header(body):
                return {}
            rows = [line.split("\t", 2) for line in body.decode("ascii").splitlines()]
            # One parse of all the facts: far cheaper than one per line.
            parsed = json.loads(f"[{','.join(text for _, _, text in rows)}]")
            known = {key: _Entry(identity, facts, text) for (key, identity, text), facts in zip(rows, parsed)}
        except (OSError, ValueError):
            return {}
        return known

    def _keep(self, current: dict[str, _Entry]) -> None:
        """Remember the facts, and write them for the next process: now when many runs were read
        (or there is no cache file yet), else when this process exits (see :func:`_fs.write_cache`)."""
        _MEMORY[str(self.runs_dir)] = (_code(), current)
        if self._cache is not None:
            now = self.read >= _WRITE_NOW or not self._cache.exists()
            _fs.write_cache(self._cache, lambda: _cache_text(current), now=now)


class _Entry:
    """A run's identity and facts, and the facts' JSON once made (so unchanged runs are not
    encoded again each time the cache is written)."""

    __slots__ = ("identity", "facts", "_text")

    def __init__(self, identity: str, facts: dict[str, Any] | None, text: str | None = None) -> None:
        self.identity = identity
        self.facts = facts
        self._text = text

    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self.facts, allow_nan=False)  # ASCII: every character escaped
        return self._text


# Runs read again from which the cache file is written at once, rather than at exit.
_WRITE_NOW = 20


def _cache_text(current: dict[str, _Entry]) -> str:
    body = "\n".join(f"{key}\t{entry.identity}\t{entry.text()}" for key, entry in current.items())
    return f"{_header(body.encode()).decode()}\n{body}"


def _header(body: bytes) -> bytes:
    """The cache file's first line: the code it was written by, and a checksum of the rest (it
    guards against a torn write; the folder is this user's own)."""
    return f"trl-reporter facts {_code()} {zlib.crc32(body):08x} {len(body)}".encode()
