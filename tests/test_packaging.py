"""The package as users get it: the wheel ships the template and py.typed, the examples are
correct, and the quickstart (the README's first command) writes a real two-run report."""

from __future__ import annotations

import py_compile
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import REPO


def test_wheel_ships_the_default_template_and_py_typed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    [wheel] = tmp_path.glob("trl_reporter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "trl_reporter/py.typed" in names
    for template in ("report.md.j2", "run.md.j2", "chart.svg.j2"):
        shipped = zipfile.ZipFile(wheel).read(f"trl_reporter/templates/{template}").decode()
        assert shipped == (REPO / "templates" / template).read_text(encoding="utf-8")


def test_examples_compile() -> None:
    for example in (REPO / "examples").glob("*.py"):
        py_compile.compile(str(example), doraise=True)


def test_capybara_example_is_a_uv_script_for_hf_jobs() -> None:
    text = (REPO / "examples" / "sft_capybara.py").read_text()
    assert text.startswith("# /// script\n")
    assert '"trl-reporter"' in text and "Qwen/Qwen2.5-0.5B" in text and "trl-lib/Capybara" in text
    assert "trackio_space_id=" in text
    # It publishes with the library, not with push code of its own.
    assert "publish=options.publish" in text and "upload_folder" not in text and "atexit" not in text


def test_the_tiny_model_is_seeded_and_leaves_the_callers_random_state_alone(tmp_path: Path) -> None:
    import hashlib

    import torch

    from trl_reporter.tiny import build_tiny_model

    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    first = build_tiny_model(tmp_path / "a")
    assert torch.equal(torch.rand(3), expected)
    second = build_tiny_model(tmp_path / "b")
    third = build_tiny_model(tmp_path / "c", seed=1)

    def weights(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert weights(first) == weights(second) != weights(third)
