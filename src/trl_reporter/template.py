"""The report template: a sandboxed jinja2 environment where escaping is the default.

Every ``{{ value }}`` is escaped for a markdown paragraph or heading (:func:`markdown.inline`)
unless a filter has already made it markdown: ``cell`` (a table cell), ``code`` and ``code_cell``
(code spans), ``code_block`` (a fenced block), ``link`` (a checked link, or its text alone) and
``attr`` (a checked URL in an HTML attribute). Those filters, and macros, return markup that is
passed through as it is; nothing else is. Formatting filters (``utc``, ``duration``, ``score``,
``count``, ``shell``) turn the view's values into text, which is then escaped like any other.

The template, not Python, owns every word of the report: a different wording is an edit of one
template file. User templates are named by the person running the code (never by saved state)
and render in ``ImmutableSandboxedEnvironment`` too.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import os
import shlex
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.sandbox
from markupsafe import Markup

from . import markdown as md
from . import view
from .errors import TemplateError
from .records import RunRecord
from .sections import RunParts

TEMPLATE_NAME = "report.md.j2"
RUN_TEMPLATE = "run.md.j2"
TEMPLATE_ENV = "TRL_REPORTER_TEMPLATE"


# -- formatting: values -> text -------------------------------------------------------------------


def utc(seconds: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """``<1 s``, ``42 s``, ``3 min 4 s``, ``1 h 12 min``, ``2 d 3 h``."""
    s = int(max(seconds, 0))
    if seconds < 1:
        return "<1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def score(value: float | str) -> str:
    """A score for people: integers as they are, floats to four significant digits, NaN and
    infinities as themselves."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def count(value: int) -> str:
    """``1,233``."""
    return f"{value:,}"


def plain(value: object, yes: str, no: str, none: str) -> str:
    """A raw parameter value as people write it: ``2e-05``, ``3.0``, ``linear``, JSON for lists and
    mappings; ``True``, ``False`` and ``None`` as the template words them."""
    if value is True:
        return yes
    if value is False:
        return no
    if value is None:
        return none
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value) or abs(value) >= 1e16:
            return repr(value)
        return f"{value:.1f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _formatted(fn: Callable[[Any], str]) -> Callable[[Any], str]:
    """A formatting filter whose output for a number is text trl-reporter wrote (``<1 s``,
    ``1,233``), so it is not escaped again; for anything else it is escaped like any value."""

    def apply(value: Any) -> str:
        text = fn(value)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return Markup(text) if number else text

    return apply


# -- markup: text -> markdown, marked as such -----------------------------------------------------


def _escape(value: object) -> Markup:
    """The default for every ``{{ }}``: markup passes, anything else becomes inert text."""
    return value if isinstance(value, Markup) else Markup(md.inline(value))


def _cell(value: object) -> Markup:
    return Markup(md.cell(value))


def _code(value: object) -> Markup:
    return Markup(md.code(value))


def _code_cell(value: object) -> Markup:
    return Markup(md.code(value, in_table=True))


def _code_block(value: object, info: str = "text") -> Markup:
    return Markup(md.code_block(value, info))


def _link(url: object, text: str) -> Markup:
    return Markup(md.link(text, url))


def _attr(url: object) -> Markup:
    return Markup(md.attr(url))


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> jinja2.Environment:
    packaged = jinja2.FileSystemLoader(str(default_template_path().parent), encoding="utf-8")
    loader: jinja2.BaseLoader = packaged
    if template_dir is not None:
        # The user's folder first; run.md.j2 (and anything else not there) from the package.
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(template_dir, encoding="utf-8"), packaged])
    # A sandbox even for the user's own template: a template is data, and one copied from
    # somewhere must not be able to reach Python (``cycler.__init__.__globals__.os``).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # with the finalize below: markdown escaping, not HTML escaping
        auto_reload=False,  # templates are read once per process, as the section cache's digest assumes
        finalize=_escape,
        keep_trailing_newline=True,
    )
    env.filters.update(
        cell=_cell,
        code=_code,
        code_cell=_code_cell,
        code_block=_code_block,
        link=_link,
        attr=_attr,
        utc=_formatted(utc),
        duration=_formatted(duration),
        score=_formatted(score),
        count=_formatted(count),
        shell=shlex.quote,
        plain=plain,
    )
    return env


def default_template_path() -> Path:
    """The shipped template: inside the installed package, or the repository's ``templates/``."""
    packaged = resources.files("trl_reporter").joinpath("templates").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates" / TEMPLATE_NAME


def chosen_template(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The template the person running this names: the argument, else ``$TRL_REPORTER_TEMPLATE``,
    else ``None`` (the packaged one). Never a path read from saved state."""
    chosen = explicit if explicit not in (None, "") else environ.get(TEMPLATE_ENV) or None
    return str(Path(chosen).expanduser().resolve()) if chosen is not None else None


class Renderer:
    """Renders an experiment's markdown: ``renderer(experiment, runs) -> str``.

    The page template reads each run's section and evaluation rows from ``sections`` and
    ``evaluation_rows``, which render a run through the macros of ``run.md.j2`` on first use. A
    run's output is kept by a digest of everything it is made of (its view data, the templates and
    this code), in memory and, given ``cache_dir``, on disk, so an experiment of a thousand runs
    re-renders only the runs that changed. A cache entry is local bookkeeping, never committed.
    """

    def __init__(self, page: jinja2.Template, env: jinja2.Environment, now: float | None) -> None:
        self._page = page
        self._env = env
        self._now = now
        self._memory: dict[str, tuple[Markup, Markup]] = {}
        self._digest: str | None = None

    def __call__(self, experiment: str, runs: list[RunRecord], *, cache_dir: Path | None = None) -> str:
        data = view.report(experiment, runs, self._now)
        parts = RunParts(self, {run["key"]: run for run in data["runs"]}, cache_dir)
        try:
            text = self._page.render(**data, sections=parts.view(0), evaluation_rows=parts.view(1))
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"report template tried something unsafe and was stopped: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"report template failed to render: {exc}") from exc
        parts.prune()
        return text.rstrip("\n") + "\n"

    def _run_module(self) -> Any:
        return self._env.get_template(RUN_TEMPLATE).module

    def digest(self) -> str:
        """What every run's output depends on besides its data: the templates and this code."""
        if self._digest is None:
            sources = [self._page.filename, self._env.get_template(RUN_TEMPLATE).filename]
            hasher = hashlib.sha256()
            for source in [*sources, __file__, md.__file__, view.__file__]:
                hasher.update(Path(source).read_bytes() if source and Path(source).is_file() else b"-")
            self._digest = hasher.hexdigest()
        return self._digest


def renderer(template: str | Path | None = None, *, now: float | None = None) -> Renderer:
    """The renderer of the default or a user template.

    ``now`` is the moment against which quiet runs are judged stale; by default the latest moment
    in the state, which keeps rendering a pure function of the state. The CLI passes the clock.
    A user template's folder may hold its own ``run.md.j2``; otherwise the packaged one is used.
    Raises :class:`TemplateError` for a template that is missing or does not parse.
    """
    if template is None:
        env = _environment(None)
        name = TEMPLATE_NAME
    else:
        path = Path(template).expanduser().resolve()
        if not path.is_file():
            raise TemplateError(f"report template {str(path)!r} does not exist")
        env, name = _environment(str(path.parent)), path.name
    try:
        return Renderer(env.get_template(name), env, now)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"report template {name!r} is invalid: {exc}") from exc
