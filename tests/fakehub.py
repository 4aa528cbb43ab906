"""A fake Hugging Face Hub HTTP server, so tests run the REAL ``huggingface_hub`` client without the network.

Only the network is faked: ``HfApi`` builds its URLs, headers, retries and error classes as against huggingface.co,
and talks to a ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) that keeps repos in memory. It answers the endpoints
huggingface_hub 2.4.0 calls for the reporter's operations (read from its source), and nothing else (404):

    POST /api/repos/create                               create_repo (409 + "url" if it exists)
    POST /api/validate-yaml                              create_commit of a README.md: always valid
    POST /api/{type}s/{ns}/{name}/preupload/{rev}        create_commit step 1: every file is "regular"
    POST /api/{type}s/{ns}/{name}/commit/{rev}           create_commit step 2: NDJSON, base64 inline files
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]    list_repo_tree (oid = git blob sha1)
    HEAD|GET /[{type}s/]{ns}/{name}/resolve/{rev}/{path} hf_hub_download (ETag, X-Repo-Commit, Content-Length)
    GET  /api/whoami-v2                                  whoami (needs the hub's token)
    GET  /api/jobs/{namespace}/{job_id}                  inspect_job (jobs seeded with add_job)
    GET  /api/buckets/{ns}/{name}/tree[/{prefix}]        list_bucket_tree
    POST /api/buckets/{ns}/{name}/paths-info             get_bucket_paths_info (first step of download_bucket_files)
    HEAD|GET /buckets/{ns}/{name}/resolve/{path}         a bucket file's bytes over plain HTTP

Errors carry the ``X-Error-Code`` the client maps to its exceptions (RepoNotFound, EntryNotFound, RevisionNotFound).
``download_bucket_files`` cannot work: it reads through hf_xet from a Xet CAS server, which is not faked (the bucket
resolve HEAD has no ``X-Xet-*`` headers, so it fails at once with ValueError). New repos are empty (the real Hub
commits a ``.gitattributes``); tree and resolve serve the latest files for any known revision.
Faults: ``inject(kind, 500, "hang", ("slow", 0.5), event)`` (one request each; an Event holds the request until it
is set), ``hang_all``, ``refuse()``; see FakeHub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

Response = tuple[int, dict[str, str], bytes]
Fault = int | str | tuple[str, float] | threading.Event
KINDS = ("commit", "preupload", "tree", "resolve", "whoami", "job", "create", "any")
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NOW = "%Y-%m-%dT%H:%M:%S.000Z"
_REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
_ROUTES = [  # (methods, path regex, fault kind, FakeHub method)
    ({"POST"}, r"/api/repos/create", "create", "_create"),
    ({"POST"}, r"/api/validate-yaml", "validate", "_validate_yaml"),
    ({"POST"}, rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload", "_preupload"),
    ({"POST"}, rf"/api/{_REPO}/commit/(?P<rev>[^/]+)", "commit", "_commit"),
    ({"GET"}, rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree", "_tree"),
    ({"GET"}, r"/api/whoami-v2", "whoami", "_whoami"),
    ({"GET"}, r"/api/jobs/(?P<ns>[^/]+)/(?P<job>[^/]+)", "job", "_job"),
    ({"GET"}, r"/api/buckets/(?P<bucket>[^/]+/[^/]+)/tree(?:/(?P<path>.*))?", "tree", "_bucket_tree"),
    ({"POST"}, r"/api/buckets/(?P<bucket>[^/]+/[^/]+)/paths-info", "tree", "_bucket_paths_info"),
    ({"GET", "HEAD"}, r"/buckets/(?P<bucket>[^/]+/[^/]+)/resolve/(?P<path>.+)", "resolve", "_bucket_resolve"),
    ({"GET", "HEAD"}, r"/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
     "resolve", "_resolve"),
]  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # URL path, percent-decoded, without the query
    query: dict[str, str]
    auth: bool  # an Authorization header was sent
    time: float  # time.monotonic()
    kind: str  # the fault kind of the endpoint, or "other" for an unknown route


@dataclass(frozen=True)
class Commit:
    oid: str
    message: str
    paths: tuple[str, ...]  # files added


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()


def _error(status: int, msg: str, code: str = "", headers: dict[str, str] | None = None, **extra: Any) -> Response:
    headers = {"X-Error-Message": msg, **({"X-Error-Code": code} if code else {}), **(headers or {})}
    return _json(status, {"error": msg, **extra}, headers)


class _Abort(Exception):
    """Raised by an endpoint with the error Response to answer."""


def _listing(paths: list[str], base: str, recursive: bool) -> tuple[list[str], list[str]] | None:
    """(folders, files) under the folder `base`, like a tree listing; None if there is no such folder."""
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    under = [p[len(prefix) :].split("/") for p in paths if p.startswith(prefix)]
    if prefix and not under:
        return None
    depth = len(max(under, key=len, default=[])) if recursive else 2
    folders = {prefix + "/".join(parts[:i]) for parts in under for i in range(1, min(len(parts), depth))}
    return sorted(folders), sorted(prefix + "/".join(parts) for parts in under if recursive or len(parts) == 1)


def refused_url() -> str:
    """A URL on 127.0.0.1 where connections are refused (a port bound, then closed, never listened on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class FakeHub:
    def __init__(self, *, user: str = "alice", orgs: tuple[str, ...] = ("acme",), token: str | None = None) -> None:
        self.user, self.orgs = user, list(orgs)
        self.token = token or "hf_fake" + secrets.token_hex(12)
        self.requests: list[Request] = []
        self.hang_all = False
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self._commits: dict[tuple[str, str], list[Commit]] = defaultdict(list)
        self._buckets: dict[str, dict[str, tuple[bytes, str]]] = defaultdict(dict)
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeHub:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging and slow requests are dropped unanswered, so this returns promptly."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads, all released by `_stopping`
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing a subprocess's huggingface_hub at this hub."""
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": self.token, "HF_HUB_OFFLINE": "0"}

    def put_file(self, repo_type: str, repo_id: str, path: str, data: bytes) -> None:
        with self._lock:
            self._repos.setdefault((repo_type, repo_id), {})[path] = data

    def files(self, repo_type: str, repo_id: str) -> dict[str, bytes]:
        with self._lock:
            return dict(self._repos.get((repo_type, repo_id), {}))

    def commits(self, repo_type: str, repo_id: str) -> list[Commit]:
        with self._lock:
            return list(self._commits[(repo_type, repo_id)])

    def put_bucket_file(self, bucket_id: str, path: str, data: bytes) -> None:
        with self._lock:
            self._buckets[bucket_id][path] = (data, time.strftime(_NOW, time.gmtime()))

    def add_job(self, namespace: str, job_id: str, stage: str = "RUNNING") -> None:
        """Make `job_id` visible to inspect_job in `namespace` only; others answer 404."""
        owner_type = "user" if namespace == self.user else "org"
        self._jobs[(namespace, job_id)] = {
            "id": job_id, "createdAt": time.strftime(_NOW, time.gmtime()), "dockerImage": "python:3.12",
            "command": ["python", "train.py"], "arguments": [], "environment": {}, "secrets": {}, "flavor": "cpu-basic",
            "owner": {"id": hashlib.sha1(namespace.encode()).hexdigest()[:24], "name": namespace, "type": owner_type},
            "status": {"stage": stage, "message": None},
        }  # fmt: skip

    def inject(self, kind: str, *faults: Fault) -> None:
        """Queue faults for requests of `kind`; each is used by one request: an HTTP status, "hang", ("slow", s),
        or an Event that holds the request until it is set."""
        assert kind in KINDS, kind
        with self._lock:
            self._faults[kind].extend(faults)

    refuse = staticmethod(refused_url)

    def _take_fault(self, kind: str) -> Fault | None:
        with self._lock:
            queue = self._faults[kind] or self._faults["any"]
            return queue.popleft() if queue else None

    # -- endpoints: each takes the route's match groups (+ "auth"), the query and the body --------------------
    def _repo(self, g: dict[str, Any]) -> tuple[tuple[str, str], dict[str, bytes]]:
        key = (g.get("type") or "model", g["repo"])
        if key not in self._repos:
            raise _Abort(_error(404, "Repository not found", "RepoNotFound"))
        rev = unquote(g.get("rev") or "main")
        if rev != "main" and rev not in {c.oid for c in self._commits[key]}:
            raise _Abort(_error(404, f"Invalid rev id: {rev}", "RevisionNotFound"))
        return key, self._repos[key]

    def _head(self, key: tuple[str, str]) -> str:
        commits = self._commits[key]
        return commits[-1].oid if commits else hashlib.sha1(repr(key).encode()).hexdigest()

    def _create_target(self, body: bytes) -> tuple[tuple[str, str], str]:
        payload = json.loads(body)
        key = (payload.get("type") or "model", f"{payload.get('organization') or self.user}/{payload['name']}")
        return key, f"{self.url}/{_PREFIX[key[0]]}{key[1]}"

    def _create(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        key, url = self._create_target(body)
        namespace = key[1].split("/")[0]
        if namespace not in (self.user, *self.orgs):
            return _error(403, f"You don't have the rights to create a repo under the namespace {namespace!r}")
        if key in self._repos:
            return _error(409, f"You already created this {key[0]} repo", url=url)
        self._repos[key] = {}
        return _json(200, {"url": url, "name": key[1]})

    def _validate_yaml(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        return _json(200, {"errors": [], "warnings": []})  # the README.md metadata is always valid

    def _preupload(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        self._repo(g)
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in json.loads(body)["files"]]
        return _json(200, {"files": files})  # no "oid", so the client never skips a file as unchanged

    def _commit(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        key, files = self._repo(g)
        header, *ops = (json.loads(line) for line in body.splitlines() if line.strip())
        new, paths = dict(files), []
        for op in ops:
            path = op["value"]["path"]
            if op["key"] != "file":  # lfsFile, deletedFile, deletedFolder: not used by the reporter
                return _error(400, f"fakehub only commits small regular files, not {op['key']!r} ({path})")
            new[path] = base64.b64decode(op["value"]["content"])
            paths.append(path)
        oid = hashlib.sha1(f"{self._head(key)}{body!r}{time.time_ns()}".encode()).hexdigest()
        self._repos[key] = new
        self._commits[key].append(Commit(oid, header["value"]["summary"], tuple(paths)))
        url = f"{self.url}/{_PREFIX[key[0]]}{key[1]}/commit/{oid}"
        return _json(200, {"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None})

    def _tree(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        _, files = self._repo(g)
        listing = _listing(list(files), unquote(g["path"] or ""), q.get("recursive") == "true")
        if listing is None:
            return _error(404, f"{unquote(g['path'])} does not exist on {unquote(g['rev'])}", "EntryNotFound")
        folders, names = listing
        return _json(
            200,
            [{"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p} for p in folders]
            + [{"type": "file", "oid": git_blob_sha1(files[p]), "size": len(files[p]), "path": p} for p in names],
        )

    def _resolve(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        key, files = self._repo(g)
        commit, path = {"X-Repo-Commit": self._head(key)}, unquote(g["path"])
        if path not in files:
            return _error(404, "Entry not found", "EntryNotFound", headers=commit)
        etag = {"ETag": f'"{git_blob_sha1(files[path])}"', "Accept-Ranges": "bytes"}
        return 200, {"Content-Type": "application/octet-stream", **etag, **commit}, files[path]

    def _whoami(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        if g["auth"] != f"Bearer {self.token}":
            return _error(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org, "id": hashlib.sha1(org.encode()).hexdigest()[:24]} for org in self.orgs]
        auth = {"type": "access_token", "accessToken": {"displayName": "fakehub", "role": "write"}}
        return _json(200, {"type": "user", "id": "0" * 24, "name": self.user, "orgs": orgs, "auth": auth})

    def _job(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        job = self._jobs.get((g["ns"], g["job"]))
        return _json(200, job) if job else _error(404, f"Job {g['job']} not found")

    def _bucket(self, g: dict[str, Any]) -> dict[str, tuple[bytes, str]]:
        if g["bucket"] not in self._buckets:
            raise _Abort(_error(404, "Bucket not found", "RepoNotFound"))
        return self._buckets[g["bucket"]]

    @staticmethod
    def _bucket_file(path: str, data: bytes, mtime: str) -> dict[str, Any]:
        xet = hashlib.sha256(data).hexdigest()  # not a real Xet hash: nothing here speaks Xet
        return {"type": "file", "path": path, "size": len(data), "xetHash": xet, "mtime": mtime, "uploadedAt": mtime}

    def _bucket_tree(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        bucket = self._bucket(g)  # a prefix matching nothing lists nothing, as HfFileSystem expects
        folders, names = _listing(list(bucket), unquote(g["path"] or ""), q.get("recursive") == "true") or ([], [])
        return _json(
            200, [{"type": "directory", "path": p} for p in folders] + [self._bucket_file(p, *bucket[p]) for p in names]
        )

    def _bucket_paths_info(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        bucket = self._bucket(g)
        return _json(200, [self._bucket_file(p, *bucket[p]) for p in json.loads(body)["paths"] if p in bucket])

    def _bucket_resolve(self, g: dict[str, Any], q: dict[str, str], body: bytes) -> Response:
        bucket, path = self._bucket(g), unquote(g["path"])
        if path not in bucket:
            return _error(404, "Entry not found", "EntryNotFound")
        data = bucket[path][0]  # no X-Xet-Hash / X-Xet-Refresh-Route headers: see the module docstring
        return 200, {"Content-Type": "application/octet-stream", "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = next(
            ((kind, name, m) for methods, regex, kind, name in _ROUTES
             if self.command in methods and (m := re.fullmatch(regex, url.path))),
            None,
        )  # fmt: skip
        kind, auth = route[0] if route else "other", self.headers.get("Authorization")
        record = Request(self.command, unquote(url.path), query, auth is not None, time.monotonic(), kind)
        with hub._lock:
            hub.requests.append(record)
        fault = "hang" if hub.hang_all else hub._take_fault(kind)
        if isinstance(fault, threading.Event):
            while not fault.wait(0.05):
                if hub._stopping.is_set():
                    return  # drop the connection without an answer
        elif fault == "hang" or (isinstance(fault, tuple) and hub._stopping.wait(fault[1])):
            hub._stopping.wait()
            return  # drop the connection without an answer
        try:
            if isinstance(fault, int):
                extra: dict[str, Any] = {"url": hub._create_target(body)[1]} if kind == "create" else {}
                response = _error(fault, f"fakehub: injected HTTP {fault}", **extra)  # exist_ok reads "url"
                if fault == 429:
                    response[1]["Retry-After"] = "0"
            elif route is None:
                response = _error(404, f"fakehub does not fake {self.command} {url.path}")
            else:
                with hub._lock:
                    response = getattr(hub, route[1])({**route[2].groupdict(), "auth": auth}, query, body)
        except _Abort as abort:
            response = abort.args[0]
        status, headers, payload = response
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


def use_fake_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point huggingface_hub, in this process and its subprocesses, at `hub`: endpoint, token, offline mode.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, at import, into ``constants``, so the constants are
    patched too, as is the module-level ``HfApi`` behind ``huggingface_hub.whoami`` & co. HfApi objects made
    before this call keep their old endpoint. The token is read from HF_TOKEN on every request, never cached.
    """
    from huggingface_hub import constants, hf_api

    for name, value in hub.env().items():
        monkeypatch.setenv(name, value)
    for name in ("HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running FakeHub with huggingface_hub pointed at it; stopped at teardown."""
    with FakeHub() as hub:
        use_fake_hub(hub, monkeypatch)
        yield hub
