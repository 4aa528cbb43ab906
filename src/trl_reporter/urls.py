"""Every URL the report links to, built in one place: Hub repos, HF Jobs logs, Trackio dashboards.

Pure functions of their arguments (and of ``$HF_ENDPOINT``, passed as ``environ``). Whether a URL
is safe to emit is decided later, by :func:`trl_reporter.markdown.safe_url`, for every URL alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

DEFAULT_ENDPOINT = "https://huggingface.co"
LOCAL_TRACKIO_URL = "http://127.0.0.1:7860/"
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
_KIND_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """``$HF_ENDPOINT`` without its trailing slash, or https://huggingface.co."""
    return (environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is shaped like a Hub repo id (and is not a local path)."""
    return bool(_HUB_ID_RE.match(name)) and ".." not in name and "--" not in name and not Path(name).exists()


def hub_url(repo_id: str, kind: str = "model", environ: Mapping[str, str] = os.environ) -> str:
    """The Hub page of a model, dataset or Space."""
    return f"{endpoint(environ)}/{_KIND_PREFIX[kind]}{_quote(repo_id, '/')}"


def job_url(owner: str, job_id: str, environ: Mapping[str, str] = os.environ) -> str:
    """The logs page of an HF Job (``huggingface_hub/_jobs_api.py``)."""
    return f"{endpoint(environ)}/jobs/{_quote(owner)}/{_quote(job_id)}"


def trackio_space_url(space_id: str) -> str:
    """trackio's own rule (``remote_client.py``) for the app URL of a Space ``owner/name``."""
    subdomain = space_id.replace("/", "-").lower().replace("_", "-").replace(".", "-")
    return f"https://{subdomain}.hf.space/"


def trackio_url(base_url: str, project: str, runs: Iterable[str]) -> str:
    """The guide's dashboard URL: ``?project=P&runs=R1,R2&sidebar=hidden&navbar=hidden``."""
    run_list = ",".join(_quote(r) for r in runs)
    return f"{base_url}?project={_quote(project)}&runs={run_list}&sidebar=hidden&navbar=hidden"


def _quote(text: str, safe: str = "") -> str:
    # Text that is not valid Unicode (a lone surrogate in a stranger's state file) still quotes.
    return quote(text, safe=safe, errors="backslashreplace")
