"""The quickstart (the README's first command) writes a real two-run report, and that report reads
well where it is read: rendered by GitHub's own cmark-gfm with the tagfilter on, its charts beside
it, its tables whole."""

from __future__ import annotations

import html.parser
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from helpers import REPO, run_titles, section_order

PER_RUN = ["Training Parameters", "Run Status", "Run Logs", "Trackio Logs", "Run Evaluations"]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project where the quickstart ran, then a score was added from the command line."""
    tmp = tmp_path_factory.mktemp("quickstart")
    project = tmp / "fresh-clone"
    (project / ".git").mkdir(parents=True)
    env = dict(os.environ, TRACKIO_DIR=str(tmp / "trackio"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Report written to {project / 'training_reports' / 'quickstart.md'}" in proc.stdout
    # The one line the reporter says of its own, once per run, on stderr.
    announced = [line for line in proc.stderr.splitlines() if line.startswith("* trl-reporter:")]
    assert len(announced) == 2 and "training_reports/quickstart.md" in announced[0], proc.stderr[-3000:]
    for run, score in (("tiny-lr-0.001", "0.25"), ("tiny-lr-0.0003", "0.5")):
        added = subprocess.run(
            [sys.executable, "-m", "trl_reporter", "add-eval", "quickstart", run, "--benchmark", "mmlu/acc"]
            + ["--score", score, "--model-link", "https://huggingface.co/acme/tiny"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
    return project


def report_of(project: Path) -> str:
    return (project / "training_reports" / "quickstart.md").read_text(encoding="utf-8")


def github_html(markdown: str) -> str:
    """What GitHub renders: cmark-gfm with the table, autolink, strikethrough and tagfilter
    extensions, raw HTML let through (GitHub's sanitizer, not cmark, filters it afterwards)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


class _Reader(html.parser.HTMLParser):
    """Text shown outside a collapsed block, and every image source."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.visible: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details":
            self.depth += 1
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth == 0:
            self.visible.append(data)


def test_quickstart_writes_two_successful_runs_with_every_section(quickstart: Path) -> None:
    report = report_of(quickstart)
    assert [(name, status) for name, _, status in run_titles(report)] == [
        ("tiny-lr-0.001", "Success"),
        ("tiny-lr-0.0003", "Success"),
    ]
    headings = section_order(report)
    first = headings.index("Base Model & Dataset: trl-reporter-tiny-llama on trl-lib/Capybara")
    assert headings[first + 2 : first + 7] == PER_RUN
    assert headings[first + 8 : first + 13] == PER_RUN
    assert headings[-1] == "Experiment Evaluations"
    assert "[Dataset](https://huggingface.co/datasets/trl-lib/Capybara)" in report


def test_github_shows_no_tag_text_outside_a_collapsed_block(quickstart: Path) -> None:
    report = report_of(quickstart)
    assert report.count("<iframe") == 2  # each run keeps the guide's iframe, style included
    assert 'style="width:1600px; height:500px; border:0;"></iframe>' in report
    reader = _Reader()
    reader.feed(github_html(report))
    shown = "".join(reader.visible)
    assert "<iframe" not in shown and "</" not in shown
    # The tagfilter did turn the iframes into text: only inside <details>, which a reader opens.
    assert github_html(report).count("&lt;iframe") == 2


def test_every_image_is_a_relative_path_to_a_file_that_exists(quickstart: Path) -> None:
    reader = _Reader()
    reader.feed(github_html(report_of(quickstart)))
    assert len(reader.images) == 3  # the overlay and one chart per run
    for src in reader.images:
        assert not re.match(r"^[a-z]+:|^/|^//", src) and ".." not in src.split("/"), src
        assert (quickstart / "training_reports" / src).is_file(), src


def test_every_chart_is_safe_svg(quickstart: Path) -> None:
    svgs = sorted((quickstart / "training_reports" / "quickstart").rglob("*.svg"))
    assert len(svgs) == 3
    for path in svgs:
        root = ET.fromstring(path.read_bytes())  # parses as XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        for element in root.iter():
            local = element.tag.rsplit("}", 1)[-1]
            assert local not in ("script", "foreignObject", "image", "use", "a", "style"), path
            for name, value in element.attrib.items():
                attr = name.rsplit("}", 1)[-1]
                assert not attr.lower().startswith("on"), (path, name)
                assert attr != "href" or value.startswith("#"), (path, name)
                assert "url(" not in value or value.startswith("url(#"), (path, name)
        # It sits on its own light card: legible on GitHub's dark theme too.
        card = root.find("{http://www.w3.org/2000/svg}rect")
        assert card is not None and card.get("fill") == "#ffffff"
        assert [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text == "step"]  # an axis


def _cells(line: str) -> int:
    """The cells of a table row, as GFM splits them: on pipes not escaped with a backslash."""
    return len(re.findall(r"(?<!\\)\|", line.strip())) - 1


def test_every_table_keeps_its_column_count(quickstart: Path) -> None:
    lines = report_of(quickstart).splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if re.fullmatch(r"\|(?:-+\|)+", line.strip()):
            tables += 1
            header = _cells(lines[i - 1])
            assert header == _cells(line)
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert _cells(lines[j]) == header, lines[j]
                j += 1
    assert tables >= 6  # summary, two parameter tables and their details, evaluations
    # And as GitHub renders it: every row of a table has as many cells as its header.
    rendered = github_html(report_of(quickstart))
    for table in re.findall(r"<table>.*?</table>", rendered, re.S):
        counts = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, re.S)}
        assert len(counts) == 1, table[:300]


def test_summary_says_what_changed_and_marks_the_best(quickstart: Path) -> None:
    report = report_of(quickstart)
    summary = report.split("## Base Model & Dataset")[0]
    assert "| Run | Status | Changed | Steps | Duration | Final loss | Best eval\\_loss | mmlu/acc |" in summary
    assert re.search(r"\| `tiny-lr-0.001` - `[0-9: -]+` \| Success \| — \(first run\) \| 30 / 30 \|", summary)
    assert re.search(r"\| `tiny-lr-0.0003` - `[0-9: -]+` \| Success \| learning rate 0.0003 \| 30 / 30 \|", summary)
    assert "| **0.5000** (best, higher is better) |" in summary
    assert summary.count("(best, lower is better)") == 1  # the lower of the two runs' best eval_loss
    assert "| Learning Rate | **0.0003** (was 0.001) |" in report
    assert "![Training loss of every run](quickstart/loss.svg)" in summary
    # A trainer metric with a known direction has a best; one without (entropy) never does.
    assert report.count("| eval\\_mean\\_token\\_accuracy | **") == 1
    assert "| eval\\_entropy | **" not in report
    # The experiment table: the benchmark and the trainer's eval_loss, one model link per run.
    table = report.split("## Experiment Evaluations")[1]
    assert "mean\\_token\\_accuracy" not in table and "entropy" not in table
    assert table.count("eval\\_loss") == 2 and table.count("mmlu/acc") == 2
    assert table.count("[Model Link](https://huggingface.co/acme/tiny)") == 4
