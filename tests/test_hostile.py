"""Hostile input renders safely: property tests over random names, values and tracebacks, hostile
URLs and experiment names, and a corpus of secrets and their harmless look-alikes."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from trl_reporter import markdown as md
from trl_reporter.errors import StoreError
from trl_reporter.naming import slug
from trl_reporter.records import Evaluation, Failure, FailureReason, Link, RunRecord, TrackioInfo
from trl_reporter.redact import scrub, scrub_text
from trl_reporter.schema import load_run
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer

PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
OUR_HTML = ("<br>", "<details>", "</details>", "<summary>", "</summary>", "<iframe ", "</iframe>")
# Text a user or library controls: printable and control characters, markup, HTML, emoji.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)
LINE = TEXT.filter(lambda s: "\n" not in s and "\r" not in s)


def _normal(text: str) -> str:
    """What a cell or heading can faithfully show: control characters as spaces, trimmed, and
    runs of spaces folded (markdown folds them when it renders)."""
    return " ".join(_controls_to_spaces(text).split())


def _controls_to_spaces(text: str) -> str:
    return "".join(" " if (ord(c) < 32 or 127 <= ord(c) <= 159 or c in "\u2028\u2029") else c for c in text)


def _inline_text(tokens: list) -> str:
    out = []
    for tok in tokens:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type == "softbreak":
            out.append(" ")
        elif tok.type == "html_inline" and tok.content == "<br>":
            out.append("\n")
    return "".join(out)


def _table_rows(text: str) -> list[list[str]]:
    tokens = PARSER.parse(text)
    rows, current = [], None
    for tok in tokens:
        if tok.type == "tr_open":
            current = []
        elif tok.type == "inline" and current is not None:
            current.append(_inline_text(tok.children or []))
        elif tok.type == "tr_close":
            rows.append(current)
            current = None
    return rows


def _html_tokens(text: str) -> list[str]:
    found = []
    for tok in PARSER.parse(text):
        if tok.type == "html_block":
            found.append(tok.content)
        for child in tok.children or []:
            if child.type == "html_inline":
                found.append(child.content)
    return found


def _record(run_name: str, params: list[tuple[str, str]], message: str = "boom", tb: str = "tb") -> RunRecord:
    run = RunRecord(
        key="r",
        run_name=run_name,
        experiment="e",
        started_at=1_700_000_000.0,
        base_model=Link(run_name, None),
        dataset=Link(run_name, None),
        parameters=params,
        changed_arguments=params,
        trackio=TrackioInfo(project=run_name, run=run_name, base_url="http://127.0.0.1:7860/"),
        evaluations=[Evaluation(run_name, 1.5)],
        host=run_name,
        pid=1,
    )
    run.fail(
        Failure(reason=FailureReason.EXCEPTION, exc_type=run_name, message=message, traceback=tb), at=1_700_000_100.0
    )
    return run


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=LINE, value=LINE)
def test_parameter_rows_keep_two_cells_and_round_trip(name: str, value: str) -> None:
    text = renderer()("exp", [_record("run", [(name, value)])])

    rows = [r for r in _table_rows(text) if len(r) == 2]
    assert all(len(r) in (2, 3, 5, 7) for r in _table_rows(text))
    assert [_normal(name), _normal(value)] in [[_normal(c) for c in r] for r in rows]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_name=LINE, value=TEXT, message=TEXT)
def test_no_raw_html_gets_through(run_name: str, value: str, message: str) -> None:
    text = renderer()(run_name, [_record(run_name, [(value, value)], message=message)])

    for fragment in _html_tokens(text):
        assert fragment.startswith(OUR_HTML) or fragment.strip().startswith(OUR_HTML), fragment


@settings(deadline=None)
@given(run_name=LINE)
def test_run_titles_show_the_name_exactly(run_name: str) -> None:
    text = renderer()("exp", [_record(run_name, [])])
    headings = [
        t for t in PARSER.parse(text) if t.type == "inline" and t.map and text.splitlines()[t.map[0]].startswith("### ")
    ]
    [heading] = headings
    spans = [c.content for c in heading.children if c.type == "code_inline"]
    # Exactly the name: code spans keep inner spaces; only control characters become spaces.
    assert spans[0] == _controls_to_spaces(run_name)
    assert spans[2] == "Failure"


@settings(deadline=None)
@given(tb=st.text(alphabet=st.sampled_from(list("`~ab\n |<>")), max_size=60))
def test_traceback_fences_never_close_early(tb: str) -> None:
    text = renderer()("exp", [_record("run", [], tb=tb or "x")])
    fences = [t for t in PARSER.parse(text) if t.type == "fence"]
    assert [f.content.rstrip("\n") for f in fences] == [
        (tb or "x").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    ]


HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "vbscript:msgbox",
    "//evil.example/x",
    "http:///nohost",
    "https://",
    "file:///etc/passwd",
    'https://ok.example/"><script>alert(1)</script>',
    "https://ok.example/\nx",
    "https://ok.example/\x00",
    "https://ok.example/a b",
    "ftp://files.example/x",
    "",
    None,
    42,
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_never_emitted_unsafely(url: object) -> None:
    safe = md.safe_url(url)
    if safe is not None:
        assert safe.startswith(("http://", "https://")) and '"' not in safe and "<" not in safe
    assert "javascript" not in md.link("x", url).lower() or safe is not None
    attribute = md.attr(url)
    if safe is None:
        assert attribute == ""
    else:  # the checked URL, HTML-escaped: nothing can end the attribute or open a tag
        assert attribute == html.escape(safe, quote=True)
        assert not any(c in attribute for c in '"<>') and attribute.startswith(("http://", "https://"))


def test_job_and_model_links_from_hostile_input_stay_inert() -> None:
    run = _record("run", [])
    run.job_id, run.job_url = "j", "javascript:alert(1)"
    run.model_link = "data:text/html,<script>"
    run.evaluations = [Evaluation("acc", 0.5, job_link="javascript:x", model_link="//evil")]
    text = renderer()("exp", [run])
    assert "javascript:" not in text and "data:text" not in text and "](//evil" not in text
    links = [c.attrs.get("href") for t in PARSER.parse(text) for c in (t.children or []) if c.type == "link_open"]
    assert links and all(str(h).startswith(("http://", "https://")) for h in links)


HOSTILE_NAMES = [
    "../escape",
    "../../etc/passwd",
    "/abs/path",
    "a/b/c",
    "..",
    ".",
    "",
    " ",
    "x\x00y",
    "CON",
    "nul.txt",
    "com1",
    "a" * 500,
    "é" * 300,
    "名前",
    "naïve",
    ".hidden",
    "-dash",
    "a\\b",
    "line\nbreak",
    "tab\tname",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_experiment_names_always_stay_inside_the_report_dir(name: str, tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    store = ExperimentStore(root, name)
    store.save_run(RunRecord(key="r", run_name="r", experiment=name, started_at=1.0))
    store.render(renderer(), timeout=5)

    assert store.report_path.resolve().parent == root.resolve()
    assert len(store.report_path.name) <= 100
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())


@settings(deadline=None)
@given(a=TEXT, b=TEXT)
def test_two_different_names_never_share_a_slug(a: str, b: str) -> None:
    if a != b:
        assert slug(a) != slug(b)


def test_two_names_whose_slugs_collide_get_separate_files(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    unsafe = ExperimentStore(root, "a/b")
    planted = ExperimentStore(root, unsafe.slug)  # a safe name equal to the other's slug
    assert planted.report_path != unsafe.report_path
    case = ExperimentStore(root, "Exp")
    other_case = ExperimentStore(root, "exp")
    assert case.report_path != other_case.report_path


def test_symlink_planted_at_the_report_is_replaced_not_written_through(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    store = ExperimentStore(root, "exp")
    store.report_path.symlink_to(victim)
    store.save_run(RunRecord(key="r", run_name="r", experiment="exp", started_at=1.0))
    store.render(renderer(), timeout=5)

    assert victim.read_text() == "precious"
    assert not store.report_path.is_symlink()


def test_symlink_planted_at_the_state_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.mkdir()
    (root / ".trl-reporter").symlink_to(elsewhere)
    with pytest.raises(StoreError, match="symlink"):
        ExperimentStore(root, "exp")
    assert list(elsewhere.iterdir()) == []


SECRETS = [
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "api_org_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "https://user:s3cr3t-pass@example.com/path",
    "postgresql://admin:hunter2@db.internal:5432/x",
    "https://user:with@at-and/slash@example.com/x",
]
LOOK_ALIKES = [
    "max_new_tokens",
    "pad_token",
    "<|endoftext|>",
    "0123456789abcdef0123456789abcdef01234567",
    "hf_home",
    "https://huggingface.co/user/repo",
    "eos_token=</s>",
    "hf_transfer",
    "src/hf_argparser.py",
    "hf_baseline",
    "https://host:8080/path",
]


def test_secrets_never_reach_any_written_file_and_look_alikes_survive(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    store = ExperimentStore(root, "secrets")
    params = [(f"arg{i}", f"value {s} end") for i, s in enumerate(SECRETS)] + [(a, a) for a in LOOK_ALIKES]
    run = _record(
        f"run {SECRETS[0]}",
        params,
        message=f"failed with {SECRETS[2]} and {SECRETS[0]}",
        tb=f"Traceback\n  token={SECRETS[1]}\n{SECRETS[3]}",
    )
    run.job_url = SECRETS[2]
    store.save_run(json_round_trip(run))
    store.render(renderer(), timeout=5)

    written = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*") if p.is_file())
    for secret in ("AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "s3cr3t-pass", "hunter2", "with@at-and/slash", "at-and"):
        assert secret not in written
    report = store.report_path.read_text(encoding="utf-8")
    for look_alike in LOOK_ALIKES:
        assert md.cell(look_alike) in report
    assert scrub({"hub_token": "anything", "pad_token": "<pad>"}) == {"hub_token": "***", "pad_token": "<pad>"}
    assert scrub_text("git 0123456789abcdef0123456789abcdef01234567") == "git 0123456789abcdef0123456789abcdef01234567"


def json_round_trip(run: RunRecord) -> RunRecord:
    return load_run(json.loads(json.dumps(run.to_dict())))


def test_bad_state_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "training_reports"
    store = ExperimentStore(root, "exp")
    store.save_run(RunRecord(key="good", run_name="good", experiment="exp", started_at=1.0))
    (store.runs_dir / "bad.json").write_text("{not json")
    (store.runs_dir / "future.json").write_text(json.dumps({"schema": 999, "key": "f"}))
    assert [r.run_name for r in store.load_runs()] == ["good"]
    assert os.path.exists(store.runs_dir / "bad.json")  # nothing is deleted: it may be mid-merge
