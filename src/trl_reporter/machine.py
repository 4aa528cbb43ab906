"""The versions, data revisions and machine a run was trained with (see provenance)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import PurePath

from .redact import clean_text

_SHA = re.compile(r"[0-9a-f]{40}")
_SNAPSHOT = re.compile(r"/models--[^/]+/snapshots/([0-9a-f]{40})(?:/|$)")
# A data file's URL at a commit: .../resolve/<sha>/... or hf://datasets/<repo>@<sha>/...
_URL_AT = re.compile(r"(?:/resolve/|@)([0-9a-f]{40})/")


def model_revision(model: object) -> str | None:
    """The base model's Hub revision: ``config._commit_hash`` where transformers still sets it,
    else the Hub cache snapshot it was loaded from (``.../snapshots/<commit>/``, by its path, or
    by its repo id's ``config.json`` in the cache: a few ``stat``, no request)."""
    config = getattr(model, "config", None)
    value = getattr(config, "_commit_hash", None)
    if isinstance(value, str) and _SHA.fullmatch(value):
        return value
    name = getattr(config, "_name_or_path", None)
    if not isinstance(name, str) or not name:
        return None
    if not os.path.isdir(name):
        if name.count("/") != 1:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - an odd name or cache: no revision
            return None
        name = cached if isinstance(cached, str) else ""
    match = _SNAPSHOT.search(name.replace(os.sep, "/"))
    return match.group(1) if match else None


def dataset_revision(dataset: object) -> tuple[str | None, str | None]:
    """(Hub revision, fingerprint) of a ``datasets.Dataset``, where it has them. A Hub dataset's
    cache folder is ``<namespace>___<name>/<config>/<version>/<commit>/`` (datasets keys it by the
    commit it loaded), and the files it was built from may name the commit in their URLs; the
    fingerprint is ``_fingerprint``."""
    revision = None
    for cache in getattr(dataset, "cache_files", None) or []:
        parts = PurePath(str(cache.get("filename", "")) if isinstance(cache, Mapping) else "").parts
        if len(parts) >= 5 and "___" in parts[-5] and _SHA.fullmatch(parts[-2]):
            revision = parts[-2]
            break
    checksums = getattr(getattr(dataset, "info", None), "download_checksums", None) or {}
    for url in checksums if revision is None and isinstance(checksums, Mapping) else ():
        match = _URL_AT.search(str(url))
        if match:
            revision = match.group(1)
            break
    fingerprint = getattr(dataset, "_fingerprint", None)
    return revision, fingerprint if isinstance(fingerprint, str) and len(fingerprint) <= 64 else None


def hardware(device_type: str, environ: Mapping[str, str] = os.environ) -> dict[str, str | int]:
    """The accelerator (name, count, memory) from torch, only for the device training uses, so
    CUDA is never initialised for a CPU run; and inside an HF Job (``JOB_ID``), its flavor."""
    found: dict[str, str | int] = {}
    if device_type == "cuda":
        try:
            import torch

            properties = torch.cuda.get_device_properties(0)
            found.update(
                accelerator=str(properties.name),
                count=int(torch.cuda.device_count()),
                memory=_gib(int(properties.total_memory)),
            )
        except Exception:  # noqa: BLE001 - a name is a nicety, never worth failing for
            found["accelerator"] = "CUDA GPU"
    elif device_type != "cpu":  # mps, xpu, npu...: named, as the Trainer uses it
        found.update(accelerator=device_type.upper())
    else:
        found.update(accelerator="CPU", count=1)
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                total = next(line for line in fh if line.startswith("MemTotal:"))
            found["memory"] = _gib(int(total.split()[1]) * 1024)
        except (OSError, StopIteration, ValueError, IndexError):
            pass
    for name, key in (("ACCELERATOR", "job_accelerator"), ("CPU_CORES", "job_cpu_cores"), ("MEMORY", "job_memory")):
        if environ.get("JOB_ID") and environ.get(name):
            found[key] = clean_text(environ[name][:100])
    return found


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


@functools.cache
def _installed() -> tuple[tuple[str, str], ...]:
    """What :func:`versions` reads, once a process: installed versions do not change under it."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = [("python", platform.python_version())]
    for dist in ("torch", "transformers", "trl", "trl-reporter"):
        try:
            found.append((dist, version(dist)))
        except PackageNotFoundError:
            continue
    return tuple(found)


def versions() -> list[tuple[str, str]]:
    """Python and the libraries that shape a run, trl-reporter included."""
    return list(_installed())
