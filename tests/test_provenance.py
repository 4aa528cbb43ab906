"""Code provenance read from real git repositories built in temporary directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAKE_SHA, cache_dataset_as, cache_model_as, run_titles, train

from trl_reporter import gitread, machine, provenance

TOKEN = "hf_" + "A" * 34


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('hello')\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_clean_checkout_gives_its_commit_and_branch(repo: Path) -> None:
    found, patch = provenance.code(repo)
    assert found.reason is None and found.commit == git(repo, "rev-parse", "HEAD")
    assert found.branch == "main" and not found.dirty and patch is None


def test_a_dirty_tree_gives_a_patch_that_applies_and_names_untracked_files(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "notes.txt").write_text("new\n")
    found, patch = provenance.code(repo)
    assert found.dirty and found.untracked == ["notes.txt"]
    assert patch is not None and "+print('changed')" in patch and "# untracked: notes.txt" in patch
    # The patch reproduces the change on a clean checkout of the commit.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (tmp_path / "run.patch").write_text(patch)
    git(clone, "apply", str(tmp_path / "run.patch"))
    assert (clone / "train.py").read_text() == "print('changed')\n"
    # Other uncommitted changes on the same commit are told apart.
    (repo / "train.py").write_text("print('changed again')\n")
    again, _ = provenance.code(repo)
    assert again.patch_id and found.patch_id and again.label() != found.label()


def test_a_token_in_a_changed_file_never_reaches_the_patch(repo: Path) -> None:
    secret = "s3cr3t-" + "x" * 12
    (repo / "train.py").write_text(
        f"TOKEN = '{TOKEN}'\nHF_TOKEN={secret}\nHF_TOKEN = \"{secret}\"\nos.environ[\"WANDB_API_KEY\"] = '{secret}'\n"
        f'config = {{"password": "{secret}"}}\nlogin(token={secret})\nclone("https://ghp_{"a" * 36}@github.com/o/r")\n'
        "token = tokenizer.decode(ids)\npad_token: '<pad>'\ntokenizer.pad_token = '<pad>'\n"
    )
    (repo / "job.yaml").write_text(f"hub_token: {secret}\nlearning_rate: 1e-4\n")
    git(repo, "add", "job.yaml")
    (repo / f"HF_TOKEN={secret}.txt").write_text("named badly\n")
    found, patch = provenance.code(repo)
    assert patch is not None and TOKEN not in patch and secret not in patch and "ghp_" not in patch
    assert secret not in repr(found)  # nor in the untracked names
    # Code that only looks like a secret is kept as it is, so that the patch still reproduces it.
    assert "login(token=***)" in patch and "+token = tokenizer.decode(ids)" in patch
    assert "+pad_token: '<pad>'" in patch and "+learning_rate: 1e-4" in patch
    assert "+tokenizer.pad_token = '<pad>'" in patch


def test_binary_and_non_utf8_changes_are_named_not_kept(repo: Path, tmp_path: Path) -> None:
    (repo / "weights.bin").write_bytes(b"\0HF_TOKEN=" + TOKEN.encode() + bytes(range(256)))
    (repo / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (repo / "train.py").write_text("print('changed')\n")
    git(repo, "add", ".")
    found, patch = provenance.code(repo)
    assert patch is not None and "# left out (a binary file): weights.bin" in patch
    assert "# left out (not UTF-8 text): latin1.txt" in patch and "GIT binary patch" not in patch
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (tmp_path / "run.patch").write_text(patch)
    git(clone, "apply", str(tmp_path / "run.patch"))  # the text changes still apply
    assert (clone / "train.py").read_text() == "print('changed')\n" and not (clone / "weights.bin").exists()


def test_a_huge_diff_is_cut_at_a_file_boundary(repo: Path) -> None:
    for i in range(4):
        (repo / f"big{i}.txt").write_text(("x" * 99 + "\n") * 10_000)  # 1 MB each
    (repo / "bundle.min.js").write_text("a" * 1_000_000)  # and one line of 1 MB: redacting it is linear
    for i in range(3000):
        (repo / f"new{i:04}.txt").write_text("x")  # untracked, and many
    git(repo, "add", "big0.txt", "big1.txt", "big2.txt", "big3.txt", "bundle.min.js")
    found, patch = provenance.code(repo, budget=10.0)  # a big diff takes time; the cap is what is tested
    assert found.patch_cut and found.patch and patch is not None
    assert len(patch.encode()) <= gitread.MAX_PATCH_BYTES
    assert patch.startswith("diff --git ") and patch.endswith("\n")
    # What did not fit is named, so that nobody takes the patch for the whole change.
    assert "# left out (the patch is capped at 1 MiB): bundle.min.js" in patch
    assert found.untracked_count == 3000 and len(found.untracked) == gitread.MAX_NAMES


def test_many_changed_files_still_read_as_a_checkout(repo: Path) -> None:
    for i in range(6000):  # more than 64 KiB of `git status`
        (repo / f"untracked-file-with-a-long-name-{i:05}.txt").write_text("x")
    found, _ = provenance.code(repo, budget=10.0)
    assert found.reason is None and found.commit == git(repo, "rev-parse", "HEAD") and found.dirty


def test_started_in_a_subfolder_the_whole_tree_is_read(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "scripts").mkdir()
    (repo / "src" / "model.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "layout")
    (repo / "src" / "model.py").write_text("x = 2\n")
    found, patch = provenance.code(repo / "scripts", exclude=[repo / "scripts" / "out"])
    assert found.dirty and patch is not None and "diff --git a/src/model.py b/src/model.py" in patch


def test_a_git_config_never_changes_the_patch(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "diff.noprefix", "true")
    git(repo, "config", "diff.mnemonicPrefix", "true")
    (repo / ".gitattributes").write_text("*.py diff=shout\n")
    git(repo, "config", "diff.shout.textconv", "tr a-z A-Z <")
    (repo / "train.py").write_text("print('changed')\n")
    found, patch = provenance.code(repo)
    assert patch is not None and "diff --git a/train.py b/train.py" in patch and "PRINT" not in patch


def test_a_slow_diff_keeps_the_commit_already_read(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A git whose diff hangs (an LFS filter, a huge file), and that leaves a child behind.
    (bin_dir / "git").write_text(f'#!/bin/sh\ncase "$*" in *" diff "*) sleep 30; exit 1;; esac\nexec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (repo / "train.py").write_text("print('changed')\n")
    started = time.monotonic()
    found, patch = provenance.code(repo)
    assert time.monotonic() - started < provenance.BUDGET + 1
    assert found.commit == git(repo, "rev-parse", "HEAD") and found.dirty and patch is None and not found.patch
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", "sleep 30"], capture_output=True, text=True).stdout.split()
    assert not left, "a git child was left running"


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    found, patch = provenance.code(repo)
    assert found.commit and found.branch is None


def test_a_repository_without_commits_says_so(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert provenance.code(tmp_path)[0].reason == "no-commits"


def test_outside_a_checkout_and_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    try:
        assert provenance.code(tmp_path)[0].reason == "not-a-checkout"
    finally:
        del os.environ["GIT_CEILING_DIRECTORIES"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert provenance.code(tmp_path)[0].reason == "no-git"


def test_a_git_that_hangs_costs_the_budget_and_no_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    assert provenance.code(tmp_path)[0].reason == "timed-out"
    assert time.monotonic() - started < provenance.BUDGET + 2  # bounded: git is stopped at the budget


def test_a_worktree_and_a_submodule_are_read(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "side")
    found, _ = provenance.code(tmp_path / "wt")
    assert found.branch == "side" and found.commit == git(repo, "rev-parse", "HEAD")
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q", "-b", "main")
    git(outer, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(repo), "sub")
    git(outer, "commit", "-q", "-m", "with a submodule")
    assert provenance.code(outer / "sub")[0].commit == git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("remote", "link"),
    [
        ("git@github.com:acme/train.git", "https://github.com/acme/train/commit/"),
        ("https://github.com/acme/train", "https://github.com/acme/train/commit/"),
        (f"https://user:{TOKEN}@huggingface.co/spaces/acme/x", "https://huggingface.co/spaces/acme/x/commit/"),
        ("https://gitlab.com/acme/train.git", None),
    ],
)
def test_a_commit_on_github_or_the_hub_becomes_a_link(repo: Path, remote: str, link: str | None) -> None:
    git(repo, "remote", "add", "origin", remote)
    found, patch = provenance.code(repo)
    if link is None:
        assert found.commit_url is None
    else:
        assert found.commit_url == link + git(repo, "rev-parse", "HEAD")


def test_the_command_line_is_redacted() -> None:
    words = provenance.command(
        [
            "train.py",
            "--hub_token",
            TOKEN,
            f"--hub-token={TOKEN}",
            "--api_key",
            "s3cr3t",
            f"HF_TOKEN={TOKEN}",
            "--lr",
            "1e-4",
        ],
        environ={},
    )
    assert TOKEN not in " ".join(words) and "s3cr3t" not in words
    assert words[1:3] == ["train.py", "--hub_token"] and words[-2:] == ["--lr", "1e-4"]
    # A flag after a secret flag is not its value; a vocabulary token is no secret.
    words = provenance.command(["t.py", "--hub_token", "--lr", "1e-4", "--image_token", "<image>"], environ={})
    assert words[1:] == ["t.py", "--hub_token", "--lr", "1e-4", "--image_token", "<image>"]
    words = provenance.command(["t.py", "--secret-key", "abc", "AWS_SECRET_ACCESS_KEY=abc", "--wandb_key", "abc"], {})
    assert "abc" not in " ".join(words)
    words = provenance.command(["t.py", *[f"shard-{i}.jsonl" for i in range(12_000)]], environ={})
    assert len(words) == provenance.MAX_WORDS + 1 and words[-1] == "... (11002 more words)"


def test_a_training_launched_by_uv_run_records_the_uv_command(tmp_path: Path) -> None:
    # A stand-in for uv (not a test dependency): like `uv run`, it sets UV and starts Python.
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text(
        f"#!{sys.executable}\nimport os, subprocess, sys\n"
        "sys.exit(subprocess.call([sys.executable, '-c', os.environ['CHILD']], env=dict(os.environ, UV=sys.argv[0])))\n"
    )
    uv.chmod(0o755)
    child = "import json; from trl_reporter import provenance; print(json.dumps(provenance.command()))"
    out = subprocess.run(
        [str(uv), "run", "train.py", "--hub-token", TOKEN, "--lr", "1e-4"],
        env=dict(os.environ, CHILD=child, JOB_ID="job-1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == ["uv", "run", "train.py", "--hub-token", "***", "--lr", "1e-4"]
    # A process further down (started by a Python that uv ran) keeps its own command line.
    below = "import os, subprocess, sys; subprocess.run([sys.executable, '-c', os.environ['BELOW']], check=True)"
    nested = subprocess.run(
        [str(uv), "run", "python", "-c", "..."],
        env=dict(os.environ, CHILD=below, BELOW=child, JOB_ID="job-1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(nested)[1:] == ["-c", child]


def test_model_and_dataset_revisions_and_the_machine(tiny_model: Path) -> None:
    from types import SimpleNamespace

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert machine.model_revision(SimpleNamespace(config=SimpleNamespace(_commit_hash=sha))) == sha
    assert machine.model_revision(SimpleNamespace(config=SimpleNamespace(_commit_hash=None))) is None
    # transformers 5 no longer sets _commit_hash: a Hub model's revision is its cache snapshot.
    from transformers import AutoModelForCausalLM

    cache_model_as(tiny_model, "acme/Versioned-Llama")
    assert machine.model_revision(AutoModelForCausalLM.from_pretrained("acme/Versioned-Llama")) == FAKE_SHA
    assert machine.model_revision(AutoModelForCausalLM.from_pretrained(str(tiny_model))) is None
    info = SimpleNamespace(download_checksums={f"hf://datasets/a/b@x/resolve/{sha}/data.parquet": {}})
    assert machine.dataset_revision(SimpleNamespace(info=info, _fingerprint="abc123")) == (sha, "abc123")
    from datasets import Dataset

    revision, fingerprint = machine.dataset_revision(Dataset.from_dict({"text": ["a", "b"]}))
    assert revision is None and fingerprint
    # A Hub dataset loaded from the datasets cache, as load_dataset lays it out: keyed by commit.
    from datasets import load_dataset

    cache_dataset_as("acme/versioned", ["one two three"] * 4)
    loaded = load_dataset("acme/versioned", split="train")
    assert machine.dataset_revision(loaded) == (FAKE_SHA, loaded._fingerprint)
    mapped = loaded.map(lambda row: {"n": len(row["text"])})  # as a trainer's preprocessing does
    assert machine.dataset_revision(mapped)[0] == FAKE_SHA
    import sys

    flavor = {"ACCELERATOR": "a10g-large", "CPU_CORES": "12", "MEMORY": "46Gi"}
    assert "job_accelerator" not in machine.hardware("cpu", flavor)  # not inside a Job
    found = machine.hardware("cpu", {**flavor, "JOB_ID": "job-1"})
    assert found["accelerator"] == "CPU" and found["job_accelerator"] == "a10g-large" and found["job_memory"] == "46Gi"
    # A CPU run never initialises CUDA.
    torch = sys.modules.get("torch")
    assert torch is None or not torch.cuda.is_initialized()


def test_a_training_in_a_dirty_checkout_says_how_to_reproduce_it(
    repo: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trl_reporter import ReportCallback

    (repo / "train.py").write_text(f"print('changed')\nHF_TOKEN = '{TOKEN}'\n")
    (repo / "scratch.txt").write_text("untracked\n")
    monkeypatch.chdir(repo)
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "1e-3", "--hub_token", TOKEN])
    train(tiny_model, [ReportCallback("exp", publish=tmp_path / "volume")], run_name="dirty")
    commit = git(repo, "rev-parse", "HEAD")
    report = (repo / "training_reports" / "exp.md").read_text()
    assert f"| Code | {commit[:12]} + uncommitted changes (patch " in report
    assert "<summary>Reproduce this run</summary>" in report and f"git checkout {commit}" in report
    assert "[a patch](.trl-reporter/exp/runs/dirty.patch)" in report and "1 untracked file" in report
    assert "train.py --lr 1e-3 --hub_token '***'" in report or "train.py --lr 1e-3 --hub_token ***" in report
    patch = (repo / "training_reports" / ".trl-reporter" / "exp" / "runs" / "dirty.patch").read_text()
    assert "+print('changed')" in patch and "# untracked: scratch.txt" in patch
    for written in (repo / "training_reports").rglob("*"):
        if written.is_file():
            assert TOKEN not in written.read_text(errors="replace"), written
    # Published with its patch, which is read back as a stranger's file.
    assert (tmp_path / "volume" / ".trl-reporter" / "exp" / "runs" / "dirty.patch").read_text() == patch


def test_a_second_run_from_other_code_is_marked_in_its_parameters(
    repo: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import ReportCallback

    monkeypatch.chdir(repo)
    train(tiny_model, [ReportCallback("exp")], run_name="first")
    (repo / "train.py").write_text("print('v2')\n")
    git(repo, "commit", "-q", "-am", "v2")
    train(tiny_model, [ReportCallback("exp")], run_name="second")
    report = (repo / "training_reports" / "exp.md").read_text()
    second = git(repo, "rev-parse", "HEAD")[:12]
    assert f"| Code | **{second}** (other code than the previous run) |" in report
    # The summary says so too: same parameters, other code.
    assert f"| Success | code {second} (same parameters) |" in report
    assert "git apply" not in report  # both trees were clean


@pytest.mark.parametrize("scenario", ["clean", "detached", "no-commits", "untracked", "huge-diff", "token"])
def test_each_kind_of_checkout_trains_and_reports_what_it_is(
    scenario: str, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import ReportCallback

    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('v1')\n")
    if scenario != "no-commits":
        git(root, "add", ".")
        git(root, "commit", "-q", "-m", "first")
    if scenario == "detached":
        git(root, "checkout", "-q", "--detach")
    elif scenario == "untracked":
        (root / "notes.md").write_text("todo\n")
    elif scenario == "huge-diff":
        (root / "data.csv").write_text(("1,2,3\n") * 900_000)  # about 5 MB
        (root / "train.py").write_text("print('v2')\n")  # a small change after the huge one
        git(root, "add", "data.csv")
    elif scenario == "token":
        (root / "train.py").write_text(f"token = '{TOKEN}'\n")
    monkeypatch.chdir(root)
    train(tiny_model, [ReportCallback("exp")], run_name=scenario)
    report = (root / "training_reports" / "exp.md").read_text()
    patch_file = root / "training_reports" / ".trl-reporter" / "exp" / "runs" / f"{scenario}.patch"
    if scenario == "no-commits":
        assert "| Code | a repository with no commits yet |" in report and not patch_file.exists()
        return
    commit = git(root, "rev-parse", "HEAD")
    assert f"git checkout {commit}" in report
    if scenario in ("clean", "detached"):
        assert f"| Code | {commit[:12]} |" in report and not patch_file.exists()
        assert ("on branch `main`" in report) == (scenario == "clean")
        return
    assert f"| Code | {commit[:12]} + uncommitted changes (patch " in report and patch_file.exists()
    patch = patch_file.read_text()
    if scenario == "untracked":
        assert patch == "# untracked: notes.md\n"
        assert "git apply" not in report  # a patch with no change in it does not apply
    elif scenario == "huge-diff":
        assert "(1 changed file only named in it: binary, not UTF-8 text, or past its 1 MiB)" in report
        assert patch.startswith("diff --git a/train.py b/train.py\n") and "+print('v2')" in patch
        assert patch.endswith("\n# left out (the patch is capped at 1 MiB): data.csv\n")
        assert "git apply huge-diff.patch" in report
    else:
        assert TOKEN not in patch and "token = '***'" in patch


def test_a_run_started_in_a_subfolder_twice_is_not_dirtied_by_its_own_report(
    repo: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import ReportCallback

    (repo / "scripts").mkdir()
    (repo / "scripts" / "run.sh").write_text("python ../train.py\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "scripts")
    monkeypatch.chdir(repo / "scripts")
    train(tiny_model, [ReportCallback("exp")], run_name="one")
    train(tiny_model, [ReportCallback("exp")], run_name="two")
    report = (repo / "training_reports" / "exp.md").read_text()  # the report is at the top
    commit = git(repo, "rev-parse", "HEAD")
    assert report.count(f"| Code | {commit[:12]} |") == 2 and "uncommitted" not in report
    # A binary change is named in the report, not silently missing from the reproduction.
    (repo / "weights.bin").write_bytes(bytes(range(256)))
    git(repo, "add", "weights.bin")
    train(tiny_model, [ReportCallback("exp")], run_name="three")
    report = (repo / "training_reports" / "exp.md").read_text()
    assert "(1 changed file only named in it: binary, not UTF-8 text)" in report


@pytest.mark.parametrize("scenario", ["outside", "no-git", "git-hangs"])
def test_a_training_without_a_readable_checkout_says_so(
    scenario: str, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import ReportCallback

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    if scenario != "outside":
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        if scenario == "git-hangs":
            (bin_dir / "git").write_text("#!/bin/sh\nexec sleep 30\n")
            (bin_dir / "git").chmod(0o755)
        # Without git: only this folder (and no git in it) is searched; python is found by path.
        path = str(bin_dir) if scenario == "no-git" else f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        monkeypatch.setenv("PATH", path)
    monkeypatch.chdir(work)
    train(tiny_model, [ReportCallback("exp")], run_name=scenario)
    report = (work / "training_reports" / "exp.md").read_text()
    expected = {
        "outside": "not a git checkout",
        "no-git": "not a git checkout (git is not installed)",
        "git-hangs": "git did not answer in time",
    }[scenario]
    assert f"| Code | {expected} |" in report
    assert f"<details><summary>Reproduce this run</summary>\n\nCode: {expected}.\n" in report
    assert "\ngit checkout " not in report  # no checkout command to give
    assert [(name, status) for name, _, status in run_titles(report)] == [(scenario, "Success")]


def test_a_pulled_run_whose_patch_did_not_come_along_links_none(
    repo: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_reporter import ReportCallback
    from trl_reporter.cli import main as cli

    (repo / "train.py").write_text("print('changed')\n")
    monkeypatch.chdir(repo)
    volume = tmp_path / "volume"
    train(tiny_model, [ReportCallback("exp", publish=volume)], run_name="dirty")
    (volume / ".trl-reporter" / "exp" / "runs" / "dirty.patch").unlink()  # lost, or never uploaded
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    monkeypatch.chdir(laptop)
    assert cli(["pull", str(volume)]) == 0
    report = (laptop / "training_reports" / "exp.md").read_text()
    assert "with uncommitted changes." in report and "[a patch](" not in report and "git apply" not in report
