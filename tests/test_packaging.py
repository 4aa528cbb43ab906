"""The package as users get it: the wheel ships the template and py.typed, the examples are
correct, and the quickstart (the README's first command) writes a real two-run report."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import REPO, run_titles, section_order


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
    for template in ("report.md.j2", "run.md.j2"):
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


def test_quickstart_writes_two_successful_runs_with_every_section(tmp_path: Path) -> None:
    project = tmp_path / "fresh-clone"
    (project / ".git").mkdir(parents=True)
    env = dict(os.environ, TRACKIO_DIR=str(tmp_path / "trackio"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report_path = project / "training_reports" / "quickstart.md"
    assert f"Report written to {report_path}" in proc.stdout
    report = report_path.read_text(encoding="utf-8")
    assert [(name, status) for name, _, status in run_titles(report)] == [
        ("tiny-lr-0.001", "Success"),
        ("tiny-lr-0.0003", "Success"),
    ]
    per_run = ["Training Parameters", "Run Status", "Run Logs", "Trackio Logs", "Run Evaluations"]
    headings = section_order(report)
    first = headings.index("Base Model & Dataset")
    assert headings[first + 2 : first + 7] == per_run
    assert headings[first + 8 : first + 13] == per_run
    assert headings[-1] == "Experiment Evaluations"
