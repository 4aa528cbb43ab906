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
