"""The logs URL of an HF Job, when no ``job_owner`` names its namespace.

The URL is ``https://huggingface.co/jobs/<namespace>/<JOB_ID>``, and no environment variable
names the namespace. In order: the namespace of ``hub_model_id`` or of the Hub repo published to
(no request); else ``whoami()``, then ``inspect_job`` against the user and each of their orgs
(org jobs live under the org's namespace, huggingface_hub#3728), on a daemon thread: the report
links the logs once that succeeds.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from . import hubsync, urls
from .destinations import Remote

logger = logging.getLogger(__name__)


def job_namespace(args: Any, targets: Sequence[Any]) -> str | None:
    """The namespace a Job's logs URL most likely lives under, with no request: that of
    ``hub_model_id``, else of the Hub repo published to."""
    repo = getattr(args, "hub_model_id", None)
    if isinstance(repo, str) and repo.count("/") == 1 and repo.split("/")[0]:
        return repo.split("/")[0]
    for target in targets:
        destination = getattr(target, "destination", None)
        if isinstance(destination, Remote):
            return destination.namespace
    return None


class OwnerLookup:
    """Finds the namespace of a Job (``whoami()``, then ``inspect_job`` against the user and each
    of their orgs) on a daemon thread; :attr:`url` is its logs URL once found."""

    def __init__(self, job_id: str, environ: Mapping[str, str] = os.environ) -> None:
        self.job_id = job_id
        self.environ = dict(environ)
        self.url: str | None = None
        self._thread = threading.Thread(target=self._run, name="trl-reporter-job-owner", daemon=True)
        self._thread.start()

    def wait(self, seconds: float) -> str | None:
        """The logs URL, waiting at most ``seconds`` for a lookup still under way."""
        self._thread.join(seconds)
        return self.url

    def _run(self) -> None:
        try:
            if hubsync.unusable(environ=self.environ) is not None:
                return
            client = hubsync.api(self.environ)
            me = client.whoami()
            names = [me.get("name")] + [org.get("name") for org in me.get("orgs") or []]
            for namespace in [n for n in names if isinstance(n, str) and n]:
                try:
                    job = client.inspect_job(job_id=self.job_id, namespace=namespace)
                except Exception:  # noqa: BLE001 - not this namespace's job
                    continue
                owner = getattr(getattr(job, "owner", None), "name", None) or namespace
                self.url = urls.job_url(owner, self.job_id, self.environ)
                return
        except Exception as exc:  # noqa: BLE001 - a link is a nicety, never worth failing for
            logger.debug("trl-reporter: could not find the owner of job %s: %s", self.job_id, exc)
