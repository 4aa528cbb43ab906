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

import functools
import hashlib
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.sandbox
from markupsafe import Markup

from . import _fs, view
from . import markdown as md
from .chartfiles import Charts
from .errors import TemplateError
from .facts import RunSource
from .formatting import count, duration, plain, score, spark, utc
from .records import RunRecord
from .sections import RunParts

# How the page template reads each run's parts (run.md.j2's macros section, evaluation_rows and
# summary_row), by run key.
PART_NAMES = ("sections", "evaluation_rows", "summary_rows")

__all__ = ["Renderer", "chosen_template", "count", "duration", "plain", "renderer", "score", "spark", "utc"]

TEMPLATE_NAME = "report.md.j2"
RUN_TEMPLATE = "run.md.j2"
CHART_TEMPLATE = "chart.svg.j2"
TEMPLATE_ENV = "TRL_REPORTER_TEMPLATE"


# -- markup: text -> markdown, marked as such ------------------------------------------------


def _formatted(fn: Callable[[Any], str]) -> Callable[[Any], str]:
    """A formatting filter whose output for a number (or for nothing: ``—``) is text trl-reporter
    wrote (``<1 s``, ``1,233``), so it is not escaped again; for anything else it is escaped like
    any value."""

    def apply(value: Any) -> str:
        text = fn(value)
        number = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        return Markup(text) if number else text

    return apply


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


def _join(runs: Any, parts: Mapping[str, Markup], separator: str = "") -> Markup:
    """The parts of ``runs`` (a run is anything with a ``key``) in order, with ``separator``
    between, leaving out empty ones (a run without evaluation rows): one call instead of a
    template loop over a thousand runs."""
    texts = (parts[run["key"]] for run in runs)
    return Markup(str(separator).join(text for text in texts if text))


def _image(path: object, alt: str) -> Markup:
    return Markup(md.image(alt, path))


def _relative_link(path: object, text: str) -> Markup:
    return Markup(md.relative_link(text, path))


_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: object) -> object:
    """The SVG template's finalize: text without the characters XML 1.0 forbids; jinja's HTML
    escaping, which XML shares, follows."""
    return value if isinstance(value, (Markup, int, float)) else _XML_INVALID_RE.sub("\ufffd", str(value))


def _loader(template_dir: str | None) -> jinja2.BaseLoader:
    packaged = jinja2.FileSystemLoader(str(default_template_path().parent), encoding="utf-8")
    if template_dir is None:
        return packaged
    # The user's folder first; run.md.j2 (and anything else not there) from the package.
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(template_dir, encoding="utf-8"), packaged])


@functools.lru_cache(maxsize=8)
def _svg_environment(template_dir: str | None) -> jinja2.Environment:
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=_loader(template_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        auto_reload=True,  # an edited template is compiled again; every digest reads its source
        finalize=_xml_text,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(),
    )


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> jinja2.Environment:
    # A sandbox even for the user's own template: a template is data, and one copied from
    # somewhere must not be able to reach Python (``cycler.__init__.__globals__.os``).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=_loader(template_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # with the finalize below: markdown escaping, not HTML escaping
        auto_reload=True,  # an edited template is compiled again; every digest reads its source
        finalize=_escape,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.globals["join"] = _join
    env.filters.update(
        cell=_cell,
        code=_code,
        code_cell=_code_cell,
        code_block=_code_block,
        relative_link=_relative_link,
        link=_link,
        attr=_attr,
        image=_image,
        spark=spark,
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

    def __init__(self, page: str, env: jinja2.Environment, now: float | None, svg: jinja2.Environment) -> None:
        self._page_name = page
        self._env = env
        self._svg = svg
        self._now = now
        self._digest: str | None = None

    def draw_chart(self, data: dict[str, Any]) -> str:
        """An SVG chart from :mod:`~trl_reporter.charts` data."""
        try:
            return self._svg.get_template(CHART_TEMPLATE).render(**data)
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"chart template tried something unsafe and was stopped: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chart template failed to render: {exc}") from exc

    def chart_digest(self) -> str:
        """What every chart depends on besides its data: the chart template's source now, and this
        package's code."""
        return _digest_of(_source(self._svg, CHART_TEMPLATE), _fs.code_digest())

    def __call__(
        self,
        experiment: str,
        runs: Sequence[RunRecord | RunSource],
        *,
        cache_dir: Path | None = None,
        charts: Charts | None = None,
    ) -> str:
        """The report of ``runs`` (records, or sources whose records are read only when their
        section must be rendered), in start order."""
        self._digest = None  # the templates may have changed since the last render
        sources = [run if isinstance(run, RunSource) else RunSource.of(run) for run in runs]
        identities = {s.facts["key"]: s.identity for s in sources if s.identity is not None}
        data, slices, depends = view.context(experiment, [s.facts for s in sources], self._now, charts, identities)
        data["evaluations"] = sum(run["experiment_rows"] for run in data["runs"])  # the table's rows
        parts = RunParts(self, {s.facts["key"]: s for s in sources}, slices, depends, cache_dir)
        try:
            produced = parts.all()
            text = self._env.get_template(self._page_name).render(
                **data,
                **{name: {key: made[i] for key, made in produced.items()} for i, name in enumerate(PART_NAMES)},
            )
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"report template tried something unsafe and was stopped: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"report template failed to render: {exc}") from exc
        parts.prune()
        return text.rstrip("\n") + "\n"

    def _run_module(self) -> Any:
        return self._env.get_template(RUN_TEMPLATE).module

    def digest(self) -> str:
        """What every run's output depends on besides its data, as of this render: the templates'
        sources (a template is compiled only when a part must really be rendered with it, and
        jinja2 recompiles one whose file changed) and this package's code."""
        if self._digest is None:
            self._digest = _digest_of(
                _source(self._env, self._page_name), _source(self._env, RUN_TEMPLATE), _fs.code_digest()
            )
        return self._digest


def _source(env: jinja2.Environment, name: str) -> str:
    if env.loader is None:  # every environment here has one
        raise TemplateError("no template loader")
    return env.loader.get_source(env, name)[0]


def _digest_of(*texts: str) -> str:
    hasher = hashlib.sha256()
    for text in texts:
        hasher.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return hasher.hexdigest()


def _bytecode_cache(environ: Mapping[str, str] = os.environ) -> jinja2.BytecodeCache | None:
    """Compiled templates, kept in this user's cache folder (``trl-reporter/jinja``, private to
    the user, like Python's own ``__pycache__``), so that a command does not compile the templates
    again; jinja2 recompiles a template whose source changed."""
    folder = _fs.user_cache(environ) / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def renderer(template: str | Path | None = None, *, now: float | None = None) -> Renderer:
    """The renderer of the default or a user template.

    ``now`` is the moment against which quiet runs are judged stale; by default the latest moment
    in the state, which keeps rendering a pure function of the state. The CLI passes the clock.
    A user template's folder may hold its own ``run.md.j2``; otherwise the packaged one is used.
    Raises :class:`TemplateError` for a template that is missing or does not parse.
    """
    folder: str | None = None
    name = TEMPLATE_NAME
    if template is not None:
        path = Path(template).expanduser().resolve()
        if not path.is_file():
            raise TemplateError(f"report template {str(path)!r} does not exist")
        folder, name = str(path.parent), path.name
    env = _environment(folder)
    try:
        env.get_template(name)  # a template that does not parse is an error now, not mid-training
        return Renderer(name, env, now, _svg_environment(folder))
    except jinja2.TemplateError as exc:
        raise TemplateError(f"report template {name!r} is invalid: {exc}") from exc
