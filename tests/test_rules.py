"""The detection and naming rules, in milliseconds: each function takes an ``environ`` dict (and
plain objects where it reads a model or a dataset), so no training is needed to reach a branch.
Full trainings in test_callback.py check that the callback wires these rules up."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from trl_reporter import detect, naming, urls
from trl_reporter.template import chosen_template
from trl_reporter.trackio_local import local_trackio_callback

# -- experiment and report names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "environ", "project", "output_dir", "expected"),
    [
        ("mine", {"TRL_REPORTER_EXPERIMENT": "env"}, "proj", "out/x", "mine"),
        (None, {"TRL_REPORTER_EXPERIMENT": "env"}, "proj", "out/x", "env"),
        ("  ", {"TRL_REPORTER_EXPERIMENT": " env "}, "proj", "out/x", "env"),
        (None, {}, "proj", "out/x", "proj"),
        (None, {}, "huggingface", "out/x/", "x"),
        (None, {}, "huggingface", "trainer_output", "Qwen2.5-0.5B-sft"),
        (None, {}, None, None, "Qwen2.5-0.5B-sft"),
    ],
)
def test_experiment_name_precedence(
    explicit: str | None, environ: dict[str, str], project: str | None, output_dir: str | None, expected: str
) -> None:
    name = naming.experiment_name(
        explicit,
        project=project,
        output_dir=output_dir,
        model_name="Qwen/Qwen2.5-0.5B",
        trainer_kind="sft",
        environ=environ,
    )
    assert name == expected


def test_trainer_kind_from_the_class_name() -> None:
    assert [naming.trainer_kind(c) for c in ("SFTTrainer", "GRPOTrainer", "Trainer", "Custom")] == [
        "sft",
        "grpo",
        "trainer",
        "custom",
    ]


def test_report_dir_explicit_then_environment_then_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    assert naming.report_dir("x", {"TRL_REPORTER_DIR": "/env"}) == Path("x").resolve()
    assert naming.report_dir(None, {"TRL_REPORTER_DIR": "/env"}) == Path("/env")
    assert naming.report_dir(None, {}) == (tmp_path / "repo" / "training_reports").resolve()


def test_safe_keys_are_kept_and_everything_else_is_slugged_with_a_hash() -> None:
    assert naming.slug("run-1.a_b") == "run-1.a_b"
    for unsafe in ("../x", "a/b", "CON", ".hidden", "x.", "a b", "é"):
        key = naming.slug(unsafe)
        assert key != unsafe and naming.is_safe_key(key)
    assert naming.slug("a/b") != naming.slug("a b")


# -- Hub links, jobs and Trackio ------------------------------------------------------------------


def test_hub_links_honour_hf_endpoint_and_leave_local_paths_as_text(tmp_path: Path) -> None:
    environ = {"HF_ENDPOINT": "https://hub.example/"}
    assert detect.hub_link("Qwen/Q", "model", environ).url == "https://hub.example/Qwen/Q"
    assert detect.hub_link("trl-lib/c", "dataset", environ).url == "https://hub.example/datasets/trl-lib/c"
    local = detect.hub_link(str(tmp_path), "model", environ)
    assert local.url is None and local.local_path
    assert detect.hub_link("not a hub id!", "model", environ).url is None


def test_base_model_from_a_peft_model_then_config_then_the_hub_cache(tmp_path: Path) -> None:
    peft = SimpleNamespace(peft_config={"default": SimpleNamespace(base_model_name_or_path="acme/base")})
    assert detect.base_model(peft, {}).name == "acme/base"  # type: ignore[union-attr]
    plain = SimpleNamespace(config=SimpleNamespace(_name_or_path="acme/plain"))
    assert detect.base_model(plain, {}).name == "acme/plain"  # type: ignore[union-attr]
    cached = tmp_path / "hub" / "models--acme--Cached" / "snapshots" / "abc"
    cached.mkdir(parents=True)
    from_cache = detect.base_model(SimpleNamespace(config=SimpleNamespace(_name_or_path=str(cached))), {})
    assert from_cache is not None and from_cache.name == "acme/Cached" and from_cache.url
    assert detect.base_model(SimpleNamespace(), {}) is None


def test_dataset_is_guessed_from_the_cache_directory_and_marked() -> None:
    cached = SimpleNamespace(cache_files=[{"filename": "/h/datasets/trl-lib___capybara/default/0.0.0/x/d.arrow"}])
    guess = detect.dataset(cached, {})
    assert guess is not None and guess.name == "trl-lib/capybara" and guess.guessed
    generic = SimpleNamespace(cache_files=[], info=SimpleNamespace(builder_name="json", dataset_name="json"))
    assert detect.dataset(generic, {}) is None
    assert detect.dataset(None, {}) is None


@pytest.mark.parametrize(
    ("owner", "environ", "expected"),
    [
        (None, {}, (None, None)),
        (None, {"JOB_ID": "j1"}, ("j1", None)),
        (None, {"JOB_ID": "j1", "TRL_REPORTER_JOB_OWNER": "acme"}, ("j1", "https://huggingface.co/jobs/acme/j1")),
        ("me", {"JOB_ID": "j1", "TRL_REPORTER_JOB_OWNER": "acme"}, ("j1", "https://huggingface.co/jobs/me/j1")),
    ],
)
def test_hf_job_logs_link_needs_an_owner(
    owner: str | None, environ: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    assert detect.hf_job(owner, environ) == expected


def test_trackio_urls_follow_trackios_own_rules() -> None:
    assert urls.trackio_space_url("Acme_Org/My.Space") == "https://acme-org-my-space.hf.space/"
    assert urls.trackio_url("http://127.0.0.1:7860/", "p q", ["a", "b/c"]) == (
        "http://127.0.0.1:7860/?project=p%20q&runs=a,b%2Fc&sidebar=hidden&navbar=hidden"
    )


@pytest.mark.parametrize("variable", ["TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_BUCKET_ID"])
def test_reporter_started_trackio_is_refused_when_the_environment_would_upload(variable: str) -> None:
    assert local_trackio_callback({variable: "x"}) == (None, variable)


def test_template_comes_from_the_argument_then_the_environment_never_elsewhere(tmp_path: Path) -> None:
    assert chosen_template(tmp_path / "a.j2", {"TRL_REPORTER_TEMPLATE": "b.j2"}) == str(tmp_path / "a.j2")
    assert chosen_template(None, {"TRL_REPORTER_TEMPLATE": str(tmp_path / "b.j2")}) == str(tmp_path / "b.j2")
    assert chosen_template(None, {}) is None


def test_host_id_names_host_boot_and_pid_namespace() -> None:
    host, boot, namespace = detect.host_id().split("/")
    assert host == detect.host() and boot and namespace
    assert os.getpid() > 0
