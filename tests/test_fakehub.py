"""The fake Hub answers the real huggingface_hub client: each call the reporter may make, plus the faults."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import fakehub
import httpx2
import huggingface_hub
import pytest
from fakehub import FakeHub, use_fake_hub
from huggingface_hub import CommitOperationAdd, HfApi, RepoFile, constants
from huggingface_hub.errors import (
    BucketNotFoundError,
    HfHubHTTPError,
    JobNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.file_download import http_get

REPO = "alice/run-reports"
fake_hub = fakehub.fake_hub  # the fixture


def _commit(api: HfApi, files: dict[str, bytes], repo_type: str = "dataset", repo_id: str = REPO) -> str:
    ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    return api.create_commit(repo_id, operations=ops, commit_message=f"add {len(files)}", repo_type=repo_type).oid


def test_points_the_client_at_the_fake(fake_hub: FakeHub) -> None:
    assert not constants.is_offline_mode()
    assert HfApi().endpoint == constants.ENDPOINT == fake_hub.url
    assert fake_hub.env()["HF_HUB_OFFLINE"] == "0" and fake_hub.env()["HF_TOKEN"].startswith("hf_fake")
    assert HfApi().whoami()["name"] == huggingface_hub.whoami()["name"] == "alice"  # the module-level HfApi too
    assert [org["name"] for org in HfApi().whoami()["orgs"]] == ["acme"]
    assert all(r.auth and r.path == "/api/whoami-v2" for r in fake_hub.requests)


def test_subprocess_reaches_the_fake_through_env(fake_hub: FakeHub) -> None:
    fake_hub.put_file("dataset", REPO, "a.md", b"from the fake")
    code = (
        "import sys; from huggingface_hub import HfApi, hf_hub_download\n"
        "print(HfApi().whoami()['name']); print(open(hf_hub_download(sys.argv[1], 'a.md', repo_type='dataset')).read())"
    )
    run = subprocess.run([sys.executable, "-c", code, REPO], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["alice", "from the fake"]
    assert {r.kind for r in fake_hub.requests} == {"whoami", "resolve"}


def test_create_commit_tree_download(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi()
    url = api.create_repo(REPO, repo_type="dataset", private=True, exist_ok=True)
    assert (url.repo_id, url.repo_type) == (REPO, "dataset")
    api.create_repo(REPO, repo_type="dataset", private=True, exist_ok=True)  # 409 -> fine
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO, repo_type="dataset")
    assert exc.value.response.status_code == 409

    first = _commit(api, {"report.md": b"# Run\n", "charts/loss.svg": b"<svg/>"})
    second = _commit(api, {"report.md": b"# Run, updated\n"})
    assert first != second
    assert fake_hub.files("dataset", REPO) == {"report.md": b"# Run, updated\n", "charts/loss.svg": b"<svg/>"}
    commits = fake_hub.commits("dataset", REPO)
    assert [(c.message, c.paths) for c in commits] == [
        ("add 2", ("report.md", "charts/loss.svg")),
        ("add 1", ("report.md",)),
    ]
    assert [c.oid for c in commits] == [first, second]

    tree = {e.path: e for e in api.list_repo_tree(REPO, recursive=True, repo_type="dataset")}
    assert set(tree) == {"charts", "charts/loss.svg", "report.md"}
    data, report = b"# Run, updated\n", tree["report.md"]
    assert isinstance(report, RepoFile) and report.size == len(data)
    assert report.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="charts", repo_type="dataset")] == ["charts/loss.svg"]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="nope", recursive=True, repo_type="dataset"))

    path = api.hf_hub_download(REPO, "charts/loss.svg", repo_type="dataset", local_dir=tmp_path)
    assert Path(path).read_bytes() == b"<svg/>"
    path = api.hf_hub_download(REPO, "report.md", repo_type="dataset", revision=second, local_dir=tmp_path / "b")
    assert Path(path).read_bytes() == data
    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download(REPO, "missing.md", repo_type="dataset", local_dir=tmp_path)
    assert {r.method for r in fake_hub.requests if r.kind == "resolve"} == {"HEAD", "GET"}
    assert all(r.auth for r in fake_hub.requests)

    # A model repo, seeded directly.
    fake_hub.put_file("model", "acme/tiny", "config.json", b"{}")
    assert Path(api.hf_hub_download("acme/tiny", "config.json", local_dir=tmp_path / "m")).read_bytes() == b"{}"


def test_missing_repo_and_namespaces(fake_hub: FakeHub) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        _commit(api, {"a.md": b"a"}, repo_id="alice/nope")
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree("alice/nope", repo_type="dataset"))
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("bob/theirs", repo_type="dataset")
    assert exc.value.response.status_code == 403


def test_jobs(fake_hub: FakeHub) -> None:
    fake_hub.add_job("acme", "job1", stage="COMPLETED")
    job = HfApi().inspect_job(job_id="job1", namespace="acme")
    assert (job.id, job.owner.name, job.owner.type, job.status.stage) == ("job1", "acme", "org", "COMPLETED")
    with pytest.raises(JobNotFoundError):
        HfApi().inspect_job(job_id="job1", namespace="alice")
    fake_hub.add_job("alice", "job2")
    assert HfApi().inspect_job(job_id="job2").status.stage == "RUNNING"  # namespace from whoami


def test_buckets(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi()
    fake_hub.put_bucket_file("acme/runs", "run1/report.md", b"# one\n")
    fake_hub.put_bucket_file("acme/runs", "run1/media/loss.svg", b"<svg/>")
    fake_hub.put_bucket_file("acme/runs", "run2/report.md", b"# two\n")
    entries = {(e.type, e.path) for e in api.list_bucket_tree("acme/runs", prefix="run1", recursive=True)}
    assert entries == {("file", "run1/report.md"), ("directory", "run1/media"), ("file", "run1/media/loss.svg")}
    top = {(e.type, e.path) for e in api.list_bucket_tree("acme/runs")}
    assert top == {("directory", "run1"), ("directory", "run2")}
    assert list(api.list_bucket_tree("acme/runs", prefix="nope", recursive=True)) == []
    with pytest.raises(BucketNotFoundError):
        list(api.list_bucket_tree("acme/missing", recursive=True))
    # download_bucket_files goes through hf_xet and a Xet CAS server, which the fake does not speak.
    with pytest.raises(ValueError, match="xet"):
        api.download_bucket_files("acme/runs", [("run2/report.md", tmp_path / "report.md")])
    # Plain HTTP reads a bucket file's bytes (what HfFileSystem does when Xet is off).
    buffer = io.BytesIO()
    http_get(f"{api.endpoint}/buckets/acme/runs/resolve/run2/report.md", buffer, headers=api._build_hf_headers())
    assert buffer.getvalue() == b"# two\n"


def test_http_errors_surface(fake_hub: FakeHub) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    fake_hub.inject("commit", 409, 500)
    for status in (409, 500):  # the commit POST is not retried by the client
        with pytest.raises(HfHubHTTPError) as exc:
            _commit(api, {"a.md": b"a"})
        assert exc.value.response.status_code == status
    fake_hub.inject("any", 503)
    with pytest.raises(HfHubHTTPError) as exc:
        api.whoami()
    assert exc.value.response.status_code == 503
    assert fake_hub.commits("dataset", REPO) == []
    _commit(api, {"a.md": b"a"})
    _commit(api, {"README.md": b"---\nlicense: mit\n---\n# Runs\n"})  # the client first validates its YAML
    assert len(fake_hub.commits("dataset", REPO)) == 2
    assert [r.kind for r in fake_hub.requests][-3:] == ["validate", "preupload", "commit"]


def test_client_retries_429_and_slow(fake_hub: FakeHub) -> None:
    api = HfApi()
    fake_hub.put_file("dataset", REPO, "a.md", b"a")
    fake_hub.inject("tree", 429, ("slow", 0.2))
    started = time.monotonic()
    assert [e.path for e in api.list_repo_tree(REPO, repo_type="dataset")] == ["a.md"]
    assert 1.2 <= time.monotonic() - started < 5  # Retry-After: 0 -> the client sleeps 0 + 1 s, then a 0.2 s answer
    assert [r.kind for r in fake_hub.requests] == ["tree", "tree"]


def test_hang_holds_one_request_and_stop_is_prompt(fake_hub: FakeHub) -> None:
    fake_hub.put_file("dataset", REPO, "a.md", b"a")
    fake_hub.inject("whoami", "hang")
    outcome: list[BaseException | dict[str, object]] = []

    def call() -> None:
        try:
            outcome.append(HfApi().whoami())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and not outcome  # whoami has no timeout: it waits as long as the server does
    assert [r.kind for r in fake_hub.requests] == ["whoami"]
    assert [e.path for e in HfApi().list_repo_tree(REPO, repo_type="dataset")] == ["a.md"]  # others still served
    started = time.monotonic()
    fake_hub.stop()
    assert time.monotonic() - started < 1.0
    thread.join(2.0)
    assert isinstance(outcome[0], httpx2.RemoteProtocolError)  # dropped without an answer


def test_hang_all_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub() as hub:
        use_fake_hub(hub, monkeypatch)
        hub.hang_all = True
        failures: list[BaseException] = []

        def call() -> None:
            try:
                HfApi(endpoint=hub.url, token=hub.token).whoami()
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)

        threads = [threading.Thread(target=call, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while len(hub.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert len(hub.requests) == 3 and not failures and all(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join(2.0)
    assert len(failures) == 3  # all dropped unanswered at stop()
    with pytest.raises(httpx2.ConnectError):
        HfApi(endpoint=FakeHub.refuse(), token="hf_x").whoami()  # no retry on whoami: refused at once
