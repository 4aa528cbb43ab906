"""Shared test helpers: build and train a tiny real model, fake the Hub cache, read reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


def build_model_once(directory: Path) -> Path:
    from trl_reporter.tiny import build_tiny_model

    if not (directory / "config.json").exists():
        build_tiny_model(directory)
    return directory


def sft_config(output_dir: str = "out/tiny", **overrides: Any):
    from trl import SFTConfig

    values: dict[str, Any] = dict(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        max_steps=6,
        logging_steps=2,
        per_device_train_batch_size=4,
        save_strategy="no",
        learning_rate=1e-3,
        max_length=32,
        disable_tqdm=True,
    )
    values.update(overrides)
    return SFTConfig(**values)


def train(model: str | Path, callbacks: list, *, dataset=None, eval_dataset=None, resume=None, **config: Any):
    """Train the tiny model with a real SFTTrainer (``resume``: ``resume_from_checkpoint``);
    returns the trainer."""
    from datasets import Dataset
    from trl import SFTTrainer

    from trl_reporter.tiny import texts

    trainer = SFTTrainer(
        model=str(model),
        args=sft_config(**config),
        train_dataset=dataset if dataset is not None else Dataset.from_dict({"text": texts(32)}),
        eval_dataset=eval_dataset,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def cache_model_as(source: Path, repo_id: str) -> None:
    """Lay out ``source`` in the Hub cache so that ``from_pretrained(repo_id)`` works offline."""
    hub = Path(os.environ["HF_HOME"]) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = hub / "snapshots" / FAKE_SHA
    if not snapshot.exists():
        shutil.copytree(source, snapshot)
        (hub / "refs").mkdir(parents=True, exist_ok=True)
        (hub / "refs" / "main").write_text(FAKE_SHA)


def cache_dataset_as(repo_id: str, texts: list[str]) -> None:
    """Lay out a dataset in the datasets cache so that ``load_dataset(repo_id)`` works offline."""
    import pyarrow as pa
    from datasets import Dataset

    namespace, name = repo_id.split("/")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    target = Path(os.environ["HF_HOME"]) / "datasets" / f"{namespace}___{snake}" / "default" / "0.0.0" / FAKE_SHA
    if target.exists():
        return
    target.mkdir(parents=True)
    ds = Dataset.from_dict({"text": texts})
    with (
        pa.OSFile(str(target / f"{snake}-train.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, ds.data.table.schema) as writer,
    ):
        writer.write_table(ds.data.table)
    info = ds.info
    info.builder_name = info.dataset_name = snake
    info.config_name, info.version = "default", "0.0.0"
    info.splits = {"train": {"name": "train", "num_bytes": 0, "num_examples": len(texts), "dataset_name": snake}}
    info.write_to_directory(str(target))


def report_files(root: Path) -> list[Path]:
    return sorted((root / "training_reports").glob("*.md"))


def only_report(root: Path) -> str:
    files = report_files(root)
    assert len(files) == 1, f"expected one report, found {files}"
    return files[0].read_text(encoding="utf-8")


def run_states(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "training_reports").glob(".trl-reporter/*/runs/*.json"))]


RUN_TITLE_RE = re.compile(
    r"^### `(?P<name>[^`]+)` - `(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)` - `(?P<status>[^`]+)`$", re.M
)


def run_titles(report: str) -> list[tuple[str, str, str]]:
    return [(m["name"], m["ts"], m["status"]) for m in RUN_TITLE_RE.finditer(report)]


def section_order(report: str) -> list[str]:
    return re.findall(r"^#+ (.+)$", report, re.M)


def run_script(name: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180):
    """Run ``tests/scripts/<name>`` in a real subprocess with the test environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sigkill_at_step_3(project: Path, model: Path, *, steps: int | None = None) -> None:
    """Train in a real process (tests/scripts/signals.py) and SIGKILL it at step 3: nothing in
    the process can see that ending."""
    env = dict(os.environ, **({"STEPS": str(steps)} if steps else {}))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "signals.py"), "default", str(model)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if reached(proc, "AT STEP 3"):
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def reached(proc: subprocess.Popen, prefix: str) -> bool:
    """Read ``proc``'s output until a line starts with ``prefix``; False if it ended first."""
    assert proc.stdout is not None
    return any(line.startswith(prefix) for line in proc.stdout)
