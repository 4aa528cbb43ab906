"""Environment facts: base model, dataset, HF Job, host, Trackio run, trainer class, devices.

Small functions that return a value or ``None``, beside the main flow: :mod:`~trl_reporter.capture`
calls them once per run. They read the environment when called (taking ``environ`` as a
parameter, so tests pass a dict), never at import time, and never touch the network. URLs are
built by :mod:`~trl_reporter.urls`.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import PurePath
from types import FrameType
from typing import Any

from . import urls
from .records import Link, TrackioInfo

_HUB_CACHE_RE = re.compile(r"^(models|datasets)--(.+)$")
# Builders that load local or generic files: their name says nothing about where the data came from.
_GENERIC_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "generator", "imagefolder", "audiofolder"}


def hub_link(name: str, kind: str, environ: Mapping[str, str] = os.environ, *, guessed: bool = False) -> Link:
    """A Link to the Hub for a Hub id; plain text (no URL) for a local path or anything else."""
    name = name.strip()
    if urls.is_hub_id(name):
        return Link(name, urls.hub_url(name, kind, environ), guessed=guessed)
    return Link(name, None, guessed=guessed, local_path=os.path.sep in name)


def peft_config(model: Any) -> Any:
    """The first PEFT adapter config of ``model``, or ``None`` for a model without adapters."""
    configs = getattr(model, "peft_config", None)
    if isinstance(configs, Mapping) and configs:
        return next(iter(configs.values()))
    return None


def _repo_id_from_cache_path(path: str) -> str | None:
    """``.../hub/models--owner--name/snapshots/<hash>`` -> ``owner/name`` (the cache keeps the case)."""
    for part in PurePath(path).parts:
        match = _HUB_CACHE_RE.match(part)
        if match:
            return match.group(2).replace("--", "/")
    return None


def base_model(model: Any, environ: Mapping[str, str] = os.environ) -> Link | None:
    """The model the run started from: a PEFT model's base, else ``config._name_or_path``."""
    name = getattr(peft_config(model), "base_model_name_or_path", None)
    if not name:
        config = getattr(model, "config", None)
        name = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    if not name or not isinstance(name, str):
        return None
    if os.path.isdir(name):
        repo_id = _repo_id_from_cache_path(name)
        if repo_id:
            return hub_link(repo_id, "model", environ)
        return Link(name, None, local_path=True)
    return hub_link(name, "model", environ)


def dataset(train_dataset: Any, environ: Mapping[str, str] = os.environ) -> Link | None:
    """A best-effort guess of the training dataset's Hub id, marked as a guess.

    A ``datasets.Dataset`` does not keep its repo id; the namespace survives only in its cache
    directory (``<namespace>___<snake_name>``), so the name part may differ in case from the Hub's.
    """
    if train_dataset is None:
        return None
    for cache in getattr(train_dataset, "cache_files", None) or []:
        filename = cache.get("filename", "") if isinstance(cache, Mapping) else ""
        for part in PurePath(filename).parts:
            if "___" in part:
                namespace, _, name = part.partition("___")
                if namespace and name:
                    return hub_link(f"{namespace}/{name}", "dataset", environ, guessed=True)
    info = getattr(train_dataset, "info", None)
    builder = getattr(info, "builder_name", None)
    dataset_name = getattr(info, "dataset_name", None)
    if isinstance(dataset_name, str) and dataset_name and builder and builder not in _GENERIC_BUILDERS:
        return hub_link(dataset_name, "dataset", environ, guessed=True)
    return None


def hf_job(owner: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str | None, str | None]:
    """``(JOB_ID, logs URL)`` inside an HF Job; the URL needs the job's owner (namespace), from
    ``owner`` or ``$TRL_REPORTER_JOB_OWNER``."""
    job_id = environ.get("JOB_ID") or None
    owner = owner or environ.get("TRL_REPORTER_JOB_OWNER") or None
    if not job_id:
        return None, None
    return job_id, urls.job_url(owner, job_id, environ) if owner else None


def host() -> str:
    return socket.gethostname()


def host_id() -> str:
    """This host as far as process ids go: hostname, boot id (a reboot kills every process) and
    PID namespace (containers that share a hostname do not share pids)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = "?"
    try:
        pid_namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_namespace = "?"
    return f"{socket.gethostname()}/{boot}/{pid_namespace}"


# Variables that make trackio.init() send data off this machine (a Space, a server, a bucket, a
# dataset, a webhook), whatever the caller passes.
TRACKIO_REMOTE_VARIABLES = (
    "TRACKIO_SPACE_ID",
    "TRACKIO_SERVER_URL",
    "TRACKIO_BUCKET_ID",
    "TRACKIO_DATASET_ID",
    "TRACKIO_WEBHOOK_URL",
    "TRACKIO_REGISTRY_BUCKET_ID",
)


def trackio_remote_variable(environ: Mapping[str, str] = os.environ) -> str | None:
    """The first environment variable that would make Trackio upload, or ``None``."""
    return next((name for name in TRACKIO_REMOTE_VARIABLES if environ.get(name)), None)


def trackio_run() -> TrackioInfo | None:
    """The active Trackio run, if trackio is imported and a run is active."""
    trackio = sys.modules.get("trackio")
    if trackio is None:
        return None
    context_vars = getattr(trackio, "context_vars", None)
    if context_vars is None:
        return None
    run = context_vars.current_run.get()
    if run is None:
        return None
    project, name = getattr(run, "project", None), getattr(run, "name", None)
    if not project or not name:
        return None
    # Private attributes, read defensively as TRL does.
    space_id = getattr(run, "_space_id", None) or context_vars.current_space_id.get()
    if space_id:
        return TrackioInfo(
            project=str(project), run=str(name), base_url=urls.trackio_space_url(str(space_id)), local=False
        )
    return TrackioInfo(project=str(project), run=str(name), base_url=urls.LOCAL_TRACKIO_URL, local=True)


def find_trainer(max_depth: int = 24) -> Any:
    """The Trainer whose event is being handled, found on the call stack (callbacks are not
    given it), or ``None``."""
    trainer_module = sys.modules.get("transformers.trainer")
    trainer_class = getattr(trainer_module, "Trainer", None)
    if trainer_class is None:
        return None
    frame: FrameType | None = sys._getframe(1)
    for _ in range(max_depth):
        if frame is None:
            break
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, trainer_class):
            return candidate
        frame = frame.f_back
    return None


def trainer_class_name(args: Any) -> str:
    """The class of the Trainer that is calling us; without one on the stack, the class its
    arguments imply (``SFTConfig`` -> ``SFTTrainer``)."""
    trainer = find_trainer()
    if trainer is not None:
        return type(trainer).__name__
    name = type(args).__name__
    if name.endswith("Config"):
        return name[: -len("Config")] + "Trainer"
    return "Trainer"


def devices(args: Any) -> tuple[int, str]:
    """How many devices train, and what they are (``(1, "CPU")``, ``(8, "NVIDIA H100")``)."""
    world = int(getattr(args, "world_size", 1) or 1)
    device = getattr(args, "device", None)
    kind = getattr(device, "type", "cpu")
    count = world if world > 1 else max(int(getattr(args, "n_gpu", 0) or 0), 1)
    if kind == "cuda":
        try:
            import torch

            return count, torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError, ImportError):  # a name is a nicety, never worth failing for
            return count, "CUDA GPU"
    return count, {"cpu": "CPU", "mps": "Apple MPS", "xpu": "Intel XPU", "npu": "Ascend NPU"}.get(kind, str(kind))


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run, for reproducibility (cached: they cannot
    change while the process runs)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("trl", "transformers", "torch", "peft"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found
