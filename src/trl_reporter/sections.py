"""Each run's part of a report, rendered once and reused while the run is unchanged.

A run's section, its rows of the experiment's evaluations table and its row of the summary are
made from the run's view data, the templates and the rendering code, and nothing else; the digest
of all of these names a cache entry, kept in memory and in this user's cache folder
(``$XDG_CACHE_HOME`` or ``~/.cache``, under ``trl-reporter/sections/``), one folder per
experiment, where one file (``parts.pack``) holds the parts of the experiment's last render. An
experiment of a thousand runs then re-renders only the runs that changed. The cache is never inside the report directory: what is
there is committed, merged and pulled, and a cached section is emitted as it is, so it must never
come from a stranger. A cache entry that cannot be read or written only costs the next render its
time.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import jinja2
from markupsafe import Markup

from . import _fs, view
from .facts import RunSource


def cache_dir_for(state_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """This user's cache folder for the experiment whose state is in ``state_dir``."""
    name = hashlib.sha256(str(state_dir.resolve()).encode("utf-8", "backslashreplace")).hexdigest()[:24]
    return _fs.user_cache(environ) / "sections" / name


# What each run contributes to the page, one macro of run.md.j2 each.
PART_MACROS = ("section", "evaluation_rows", "summary_row")
Parts = tuple[Markup, ...]


class _Owner(Protocol):
    """What the parts need from the renderer: its digest and its run macros."""

    def digest(self) -> str: ...

    def _run_module(self) -> Any: ...


# Rendered parts by digest, shared by every renderer of this process (the digest names the
# templates and code too), so that repeated API calls re-render only what changed.
# Each entry also names the cache folders known to hold it, so a part found in memory still
# reaches the disk cache of another experiment folder (and the next process).
_MEMORY: OrderedDict[str, tuple[Parts, str, set[str]]] = OrderedDict()
_MEMORY_ENTRIES = 20_000


def forget() -> None:
    """Write what is pending, and empty this process's memory of rendered parts."""
    _fs.flush_caches()
    _MEMORY.clear()
    _PACKS.clear()


class RunParts:
    """Each run's parts, produced on first use, from the caches if there.

    A run whose saved state has an identity is looked up by that identity and what its slice of
    the experiment depends on, without reading its record; any other run by its whole view data.
    """

    def __init__(
        self,
        renderer: _Owner,
        runs: dict[str, RunSource],
        slices: dict[str, dict[str, Any]],
        depends: dict[str, str],
        cache_dir: Path | None,
    ) -> None:
        self._renderer = renderer
        self.runs = runs
        self._slices = slices
        self._depends = depends
        self._cache_dir = cache_dir
        self._kept: dict[str, Parts] = {}  # this render's parts, by digest
        self._wrote = 0

    def all(self) -> dict[str, Parts]:
        """Every run's parts, by run key. An error inside one run's rendering names the run."""
        done = {}
        for key in self.runs:
            try:
                done[key] = self._produce(key)
            except jinja2.TemplateError:
                raise  # the template's own error: the renderer says which template
            except Exception as exc:
                raise RuntimeError(f"rendering run {key!r} failed: {exc!r}") from exc
        return done

    def _produce(self, key: str) -> Parts:
        source, data = self.runs[key], None
        if source.identity is not None:
            made_of = f"{source.identity}\0{self._depends[key]}"
        else:
            # The view's data is plain and built in a fixed order, so its repr identifies it.
            data = view.run_view(source.load(), self._slices[key])
            made_of = repr(data)
        name = self._renderer.digest() + made_of
        folder = str(self._cache_dir)
        remembered = _MEMORY.get(name)
        if remembered is not None:
            _MEMORY.move_to_end(name)
            found, digest, stored = remembered
            if folder not in stored and self._read(digest) is None:
                self._write(digest, found)
            stored.add(folder)
        else:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
            read = self._read(digest)
            if read is not None:
                found = read
            else:
                if data is None:
                    data = view.run_view(source.load(), self._slices[key])
                module = self._renderer._run_module()
                found = tuple(Markup(getattr(module, macro)(data)) for macro in PART_MACROS)
                self._write(digest, found)
            _MEMORY[name] = (found, digest, {folder})
            while len(_MEMORY) > _MEMORY_ENTRIES:
                _MEMORY.popitem(last=False)
        self._kept[digest] = found
        return found

    def _read(self, digest: str) -> Parts | None:
        if self._cache_dir is None:
            return None
        folder = str(self._cache_dir)
        if folder not in _PACKS:
            _PACKS[folder] = _read_pack(self._cache_dir / _PACK)
        return _PACKS[folder].get(digest)

    def _write(self, digest: str, parts: Parts) -> None:
        self._wrote += 1

    def prune(self) -> None:
        """Keep, in the experiment's cache file, the parts of this render and nothing else.

        Writing a thousand runs' parts costs more than rendering a few of them again, so a render
        that made only a few new parts leaves the file to be written when the process exits (or by
        a later render that made many): a process killed before then costs the next one those few.
        """
        if self._cache_dir is None or not self._wrote:
            return  # every part came from the cache file or this process's memory of it
        kept = self._kept
        _PACKS[str(self._cache_dir)] = kept
        _fs.write_cache(self._cache_dir / _PACK, lambda: _pack(kept), now=self._wrote >= _WRITE_NOW)


# New parts from which a render writes the cache file at once, rather than at exit.
_WRITE_NOW = 20
# Each experiment's cache file, read once per process.
_PACKS: dict[str, dict[str, Parts]] = {}


_PACK = "parts.pack"


def _pack(parts: dict[str, Parts]) -> bytes:
    """``digest len len len\n`` and the parts' text, for every entry, under a checksummed header."""
    body = "".join(
        f"{digest} {' '.join(str(len(p)) for p in found)}\n{''.join(found)}" for digest, found in parts.items()
    )
    data = body.encode("utf-8", "surrogatepass")
    return f"trl-reporter parts {zlib.crc32(data):08x} {len(data)}\n".encode() + data


def _read_pack(path: Path) -> dict[str, Parts]:
    """The entries of a cache file; none if it is torn (cache writes skip fsync) or not ours."""
    try:
        header, _, data = path.read_bytes().partition(b"\n")
        if header != f"trl-reporter parts {zlib.crc32(data):08x} {len(data)}".encode():
            return {}
        text = data.decode("utf-8", "surrogatepass")
        entries: dict[str, Parts] = {}
        at = 0
        while at < len(text):
            end = text.index("\n", at)
            digest, *lengths = text[at:end].split(" ")
            at = end + 1
            found = []
            for length in map(int, lengths):
                found.append(Markup(text[at : at + length]))
                at += length
            entries[digest] = tuple(found)
        return entries
    except (OSError, ValueError):
        return {}
