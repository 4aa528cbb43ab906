"""Test session setup: no network, throwaway HF and Trackio homes, a tiny real model.

The environment is set here, at import, because trackio reads TRACKIO_DIR when it is imported
and the Hub libraries read HF_HOME and HF_HUB_OFFLINE early.
"""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="trl-reporter-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
os.environ["TRACKIO_DIR"] = os.path.join(_HOME, "trackio")
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, "cache")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DISABLE_TQDM"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# A 32-wide model gains nothing from threads, and on 2 cores shared by test workers and their
# subprocesses, OpenMP's spinning threads only slow everyone down.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
# Scripts run in subprocesses import the test helpers, and the package from wherever this run does.
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_TESTS, os.environ.get("PYTHONPATH")) if p)
for _var in (
    "JOB_ID",
    "TRL_REPORTER_EXPERIMENT",
    "TRL_REPORTER_DIR",
    "TRL_REPORTER_JOB_OWNER",
    "TRL_REPORTER_PUBLISH",
    "HF_ENDPOINT",
    "HF_TOKEN",
):
    os.environ.pop(_var, None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests: a few hundred examples in the suite; bench/reliability.py runs thousands.
settings.register_profile("suite", max_examples=300)
settings.register_profile("large", max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

from helpers import build_model_once  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A tiny Llama model and tokenizer saved on disk, built once per session."""
    return build_model_once(Path(_HOME) / "tiny-model")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project (a git checkout) as the working directory."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root
