"""The rendered markdown, checked against a golden file, and the escaping rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trl_reporter import markdown as md
from trl_reporter import sections
from trl_reporter.chartfiles import Charts
from trl_reporter.records import Evaluation, Failure, FailureReason, Link, RunRecord, Source, Status, TrackioInfo
from trl_reporter.template import duration, renderer, score

GOLDEN = Path(__file__).parent / "golden" / "report.md"
T0 = 1764250000.0  # 2025-11-27 13:26:40 UTC


def golden_runs() -> list[RunRecord]:
    qwen = Link("Qwen/Qwen2.5-0.5B", "https://huggingface.co/Qwen/Qwen2.5-0.5B")
    capybara = Link("trl-lib/Capybara", "https://huggingface.co/datasets/trl-lib/Capybara")
    space = TrackioInfo(
        project="qwen-capybara-sft", run="run-1764250000", base_url="https://acme-trackio.hf.space/", local=False
    )
    success = RunRecord(
        key="run-1764250000",
        run_name="run-1764250000",
        experiment="qwen-capybara-sft",
        started_at=T0,
        ended_at=T0 + 4332,
        base_model=qwen,
        dataset=capybara,
        parameters=[("learning_rate", 2e-05), ("optimizer", "adamw_torch_fused"), ("Odd | value", "a|b <b>x</b>")],
        changed_arguments=[("logging_steps", "25"), ("hub_model_id", "acme/qwen-capybara-sft")],
        host="gpu-box-1",
        pid=4242,
        job_id="6928a8f1c0ffee0012345678",
        job_url="https://huggingface.co/jobs/acme/6928a8f1c0ffee0012345678",
        published_to=["hf://datasets/acme/training-reports"],
        trackio=space,
        steps_done=1233,
        steps_planned=1233,
        final_loss=1.0843,
        evaluations=[
            Evaluation(
                "eval_loss", 1.12134, job_link="https://huggingface.co/jobs/acme/6928a8f1c0ffee0012345678", step=1233
            ),
            Evaluation("eval_entropy", 2.5, step=1233),  # no better direction: never "best"
            # Added twice: the second replaces the first in the report.
            Evaluation("mmlu/acc", 0.48, job_link="https://huggingface.co/jobs/acme/eval-1", source=Source.CLI),
            Evaluation(
                "mmlu/acc",
                0.512,
                job_link="https://huggingface.co/jobs/acme/eval-2",
                model_link="https://huggingface.co/acme/qwen-capybara-sft-v2",
                source=Source.CLI,
            ),
        ],
        model_link="https://huggingface.co/acme/qwen-capybara-sft",
        curves=["loss", "eval_loss"],
        trend=[2.9, 2.1, 1.6, 1.3, 1.2, 1.1, 1.0843],
        best_eval_loss=1.118,
    )
    success.status = Status.SUCCESS
    failure = RunRecord(
        key="run-1764253600",
        run_name="run-1764253600",
        experiment="qwen-capybara-sft",
        started_at=T0 + 3600,
        base_model=qwen,
        dataset=capybara,
        parameters=[("learning_rate", 5e-05), ("optimizer", "adamw_torch_fused"), ("Odd | value", "a|b")],
        host="gpu-box-1",
        pid=4343,
        evaluations=[Evaluation("mmlu/acc", 0.39, source=Source.API)],
        trackio=TrackioInfo(
            project="qwen-capybara-sft", run="run-1764253600", base_url="https://acme-trackio.hf.space/", local=False
        ),
        steps_planned=1233,
    )
    failure.fail(
        Failure(
            reason=FailureReason.EXCEPTION,
            exc_type="OutOfMemoryError",
            message="CUDA out of memory. Tried to allocate 2.00 GiB",
            traceback='Traceback (most recent call last):\n  File "train.py", line 88, in <module>\n    x = "```"\ntorch.OutOfMemoryError: CUDA out of memory.\n',
        ),
        at=T0 + 3600 + 1398,
        steps_done=412,
    )
    in_progress = RunRecord(
        key="weird-name",
        run_name="weird `name` | <script>",
        experiment="qwen-capybara-sft",
        started_at=T0 + 9200,
        base_model=Link("/data/models/qwen-1.5b", None, local_path=True),
        dataset=None,
        parameters=[("learning_rate", 1e-05)],
        host="gpu-box-3",
        pid=48213,
        trackio=TrackioInfo(
            project="qwen-capybara-sft", run="weird `name` | <script>", base_url="http://127.0.0.1:7860/"
        ),
        steps_planned=1233,
    )
    return [success, failure, in_progress]


GOLDEN_CHARTS = Charts(
    runs={"run-1764250000": "qwen-capybara-sft/runs/run-1764250000.svg"}, overlay="qwen-capybara-sft/loss.svg"
)


def test_rendered_report_matches_the_golden_file() -> None:
    text = renderer()("qwen-capybara-sft", golden_runs(), charts=GOLDEN_CHARTS)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_rendering_twice_is_byte_identical() -> None:
    render = renderer()
    assert render("x", golden_runs()) == render("x", golden_runs())


def test_user_template_is_used(tmp_path: Path) -> None:
    template = tmp_path / "mine.md.j2"
    template.write_text(
        "# {{ experiment }}\n{% for g in groups %}{% for r in g.runs %}- {{ r.name | code }} {{ r.status }}\n"
        "{% endfor %}{% endfor %}"
    )
    text = renderer(template)("exp_1", golden_runs())
    assert text.startswith("# exp\\_1\n- `run-1764250000` Success\n")


def test_missing_user_template_is_a_clear_error(tmp_path: Path) -> None:
    from trl_reporter.errors import TemplateError

    with pytest.raises(TemplateError, match="does not exist"):
        renderer(tmp_path / "nope.j2")


def test_cell_escapes_markup_but_leaves_numbers_alone() -> None:
    assert md.cell("2e-05") == "2e-05"
    assert md.cell("0.03") == "0.03"
    assert md.cell("Qwen2.5-0.5B") == "Qwen2.5-0.5B"
    assert md.cell("a|b") == "a\\|b"
    assert md.cell("<img src=x onerror=alert(1)>") == "\\<img src=x onerror=alert(1)\\>"
    assert md.cell("line1\nline2") == "line1<br>line2"
    assert md.cell("&amp; *x* _y_ [l](u) `c`") == "\\&amp; \\*x\\* \\_y\\_ \\[l\\](u) \\`c\\`"


def test_code_span_cannot_close_early() -> None:
    assert md.code("a`b") == "``a`b``"
    assert md.code("`x`") == "`` `x` ``"
    assert md.code("a|b", in_table=True) == "`a\\|b`"
    assert md.code(" \xa0 ") == "`  \xa0  `"  # a no-break space is not a space to CommonMark


def test_code_block_fence_is_longer_than_any_backtick_run() -> None:
    block = md.code_block("x = '````'")
    assert block.startswith("`````text\n") and block.endswith("\n`````")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "//evil.example/x", "http://", "ftp://h/x", "https://a b", None]
)
def test_unsafe_urls_are_never_emitted(url: object) -> None:
    assert md.safe_url(url) is None
    assert md.link("Run Logs", url) == "Run Logs"
    assert md.attr(url) == ""


def test_url_attribute_is_escaped() -> None:
    assert md.attr('https://h/?a=1&b="x"') == "https://h/?a=1&amp;b=%22x%22"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "<1 s"), (42, "42 s"), (184, "3 min 4 s"), (4332, "1 h 12 min"), (183600, "2 d 3 h")]
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_scores_keep_four_significant_digits() -> None:
    assert score(1.12134) == "1.121"
    assert score(0.000123456) == "0.0001235"
    assert score(12) == "12"


def test_cached_run_sections_give_the_same_bytes_and_follow_changes(tmp_path: Path) -> None:
    cache = tmp_path / "sections"
    runs = golden_runs()
    sections.forget()  # what earlier renders of these runs left in this process's memory
    fresh = renderer()("qwen-capybara-sft", runs)
    assert renderer()("qwen-capybara-sft", runs, cache_dir=cache) == fresh  # fills the cache
    sections.forget()  # written at exit, or now
    pack = cache / "parts.pack"
    assert pack.read_bytes().count(b"\n## ") == 0 and pack.read_bytes().count(b"### `") == len(runs)
    assert renderer()("qwen-capybara-sft", runs, cache_dir=cache) == fresh  # read back from it

    sections.forget()  # a torn or foreign cache is a miss, never output
    pack.write_bytes(pack.read_bytes().replace(b"Success", b"<script>"))
    assert renderer()("qwen-capybara-sft", runs, cache_dir=cache) == fresh

    runs[0].final_loss = 0.5
    changed = renderer()("qwen-capybara-sft", runs, cache_dir=cache)
    assert "Final training loss 0.5000." in changed and changed == renderer()("qwen-capybara-sft", runs)


def test_state_written_by_trl_reporter_0_1_reads_and_renders_as_it_did(tmp_path: Path) -> None:
    """Schema 1 kept the key as run_id and sentences where codes are now."""
    from trl_reporter.store import ExperimentStore

    store = ExperimentStore(tmp_path / "training_reports", "old")
    store.runs_dir.mkdir(parents=True)
    (store.runs_dir / "old-run.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "run_id": "old-run",
                "run_name": "old-run",
                "experiment": "old",
                "started_at": T0,
                "ended_at": T0 + 60,
                "status": "Failure",
                "base_model": {"name": "/models/m", "url": None, "guessed": False, "note": "local path"},
                "parameters": [["Learning Rate", "2e-05"], ["Optimizer", "adamw_torch_fused"]],
                "changed_arguments": [["logging_steps", "5"]],
                "failure": {"reason": "terminated by SIGTERM", "signal": "SIGTERM"},
                "trackio_note": "Trackio logging is off for this run. Turn it on with ReportCallback(trackio=True) "
                'or report_to="trackio".',
                "steps_done": 3,
                "resumed": [{"at": T0 + 5, "step": 2, "previous_status": "Completed"}],
            }
        )
    )
    [run] = store.load_runs()
    text = renderer()("old", [run])
    assert "Base Model: `/models/m` (local path)" in text
    assert "| Learning Rate | 2e-05 |\n| Optimizer | adamw\\_torch\\_fused |" in text
    assert "| logging\\_steps | 5 |" in text
    assert "`Failure`: terminated by SIGTERM, at step 3, after 1 min" in text
    assert (
        'Trackio logging is off for this run. Turn it on with ReportCallback(trackio=True) or report\\_to="trackio".'
        in text
    )
    assert "Ended `Completed`. Resumed on 2025-11-27 13:26:45 at step 2." in text


def test_an_error_inside_a_run_is_named_not_hidden_as_a_missing_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import view

    def broken(run: RunRecord, part: dict) -> dict:
        raise KeyError("a lookup deep inside")  # what jinja would read as "no such item"

    monkeypatch.setattr(view, "run_view", broken)
    sections.forget()
    with pytest.raises(RuntimeError, match="rendering run 'run-1764250000' failed"):
        renderer()("qwen-capybara-sft", golden_runs(), cache_dir=tmp_path)


def test_the_readme_excerpt_is_copied_from_the_golden_report() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    golden = GOLDEN.read_text(encoding="utf-8")
    excerpt = golden[: golden.index("### `run-1764253600`")].rstrip() + "\n\n...\n"
    assert f"```markdown\n{excerpt}```" in readme
