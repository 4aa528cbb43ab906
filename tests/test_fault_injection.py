"""The reporter never hurts training: exceptions injected into each of its internal steps leave
trainer.train() returning with the same final step and loss as a run without the reporter, and
at most one warning per kind of failure."""

from __future__ import annotations

import errno
import logging
import os
import types
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest
from helpers import train

import trl_reporter._fs as fs
from trl_reporter import ReportCallback, detect, params
from trl_reporter.store import ExperimentStore


def _raiser(exc: BaseException) -> Callable[..., object]:
    def boom(*args: object, **kwargs: object) -> object:
        raise exc

    return boom


def _failing_os(code: int) -> types.SimpleNamespace:
    """The ``os`` module as trl_reporter._fs sees it, with ``os.replace`` failing."""
    proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    proxy.replace = _raiser(OSError(code, os.strerror(code)))
    return proxy


INJECTIONS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "detect base model": lambda mp: mp.setattr(detect, "base_model", _raiser(RuntimeError("detect"))),
    "detect dataset": lambda mp: mp.setattr(detect, "dataset", _raiser(KeyError("dataset"))),
    "detect trackio": lambda mp: mp.setattr(detect, "trackio_run", _raiser(AttributeError("trackio"))),
    "collect parameters": lambda mp: mp.setattr(params, "curated", _raiser(TypeError("params"))),
    "render": lambda mp: mp.setattr(ExperimentStore, "render_locked", _raiser(ValueError("render"))),
    "lock": lambda mp: mp.setattr(filelock.FileLock, "acquire", _raiser(OSError(errno.EACCES, "lock"))),
    "write": lambda mp: mp.setattr(fs, "atomic_write", _raiser(OSError(errno.ENOSPC, "write"))),
    "os.replace ENOSPC": lambda mp: mp.setattr(fs, "os", _failing_os(errno.ENOSPC)),
    "os.replace EROFS": lambda mp: mp.setattr(fs, "os", _failing_os(errno.EROFS)),
    "os.replace EACCES": lambda mp: mp.setattr(fs, "os", _failing_os(errno.EACCES)),
}


@pytest.fixture(scope="module")
def baseline(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, float]:
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("baseline"))
    try:
        trainer = train(tiny_model, [], max_steps=8)
    finally:
        os.chdir(cwd)
    return trainer.state.global_step, trainer.state.log_history[-1]["train_loss"]


@pytest.mark.parametrize("where", list(INJECTIONS))
def test_injected_failure_never_reaches_the_trainer(
    where: str,
    project: Path,
    tiny_model: Path,
    baseline: tuple[int, float],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    INJECTIONS[where](monkeypatch)
    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        trainer = train(tiny_model, [ReportCallback(trackio=False)], max_steps=8)

    assert (trainer.state.global_step, trainer.state.log_history[-1]["train_loss"]) == baseline
    warnings = [
        r.getMessage() for r in caplog.records if r.name.startswith("trl_reporter") and r.levelno >= logging.WARNING
    ]
    assert 1 <= len(warnings) <= 2, warnings  # one per kind; an enrichment step and the write it spoils may differ
    assert len(set(warnings)) == len(warnings)


def test_read_only_report_dir_warns_and_training_finishes(
    project: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trl_reporter"):
        trainer = train(tiny_model, [ReportCallback(report_dir="/proc/trl-reporter-cannot-write", trackio=False)])
    assert trainer.state.global_step == 6
    assert sum(r.name.startswith("trl_reporter") for r in caplog.records) == 1
