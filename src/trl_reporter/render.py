"""Markdown rendering: run records -> a plain-data context -> the jinja2 template.

The context holds only strings, numbers, lists and dicts, never Trainer objects; prose lines that
mix formatting with values (the status line, the logs line) are composed here with the escaping
functions of :mod:`trl_reporter.markdown`. Rendering is a pure function of the saved state, so
rendering twice gives byte-identical output.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import re
import shlex
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.sandbox

from . import liveness
from . import markdown as md
from .detect import trackio_url
from .records import Evaluation, RunRecord, Status

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "report.md.j2"
TEMPLATE_ENV = "TRL_REPORTER_TEMPLATE"
_MAX_MESSAGE = 500


class TemplateError(ValueError):
    """A user template that cannot be loaded or rendered, or that tried something unsafe."""


# -- formatting ---------------------------------------------------------------------------------


def timestamp(seconds: float) -> str:
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
    """A score for people: integers as they are, floats to four significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def run_title(run: RunRecord, *, in_table: bool = False) -> str:
    """The guide's title: `` `<run name>` - `<YYYY-MM-DD HH:MM:SS>` - `<Status>` ``."""
    parts = (run.run_name, timestamp(run.started_at), run.status.value)
    return " - ".join(md.code(p, in_table=in_table) for p in parts)


def _span(run: RunRecord, word: str) -> str:
    """``in 1 h 12 min (2026-11-27 13:26:40 to 14:38:52)``; the end's date only when it differs."""
    start = timestamp(run.started_at)
    end = timestamp(run.ended_at if run.ended_at is not None else run.started_at)
    if end[:10] == start[:10]:
        end = end[11:]
    return f"{word} {duration((run.ended_at or run.started_at) - run.started_at)} ({start} to {end})"


def _steps(run: RunRecord) -> str:
    planned = f" of {run.steps_planned:,}" if run.steps_planned else ""
    return f"{run.steps_done:,}{planned}"


def _loss(run: RunRecord) -> str:
    parts = []
    if run.final_loss is not None:
        parts.append(f"Final training loss {score(run.final_loss)}")
    if run.mean_loss is not None:
        parts.append(f"mean over the run {score(run.mean_loss)}" if parts else f"Mean training loss {score(run.mean_loss)}")
    text = f" {', '.join(parts)}." if parts else ""
    if run.final_loss is not None and not math.isfinite(run.final_loss):
        text += " **The final training loss is not a finite number: training diverged.**"
    return text


def status_line(run: RunRecord, now: float | None = None) -> str:
    status = md.code(run.status.value)
    loss = _loss(run)
    if run.status is Status.IN_PROGRESS:
        planned = f", {run.steps_planned:,} steps planned" if run.steps_planned else ""
        where = _process(run)
        line = f"{status}: started {timestamp(run.started_at)}{planned}.{' ' + where + '.' if where else ''}"
        if now is not None and liveness.stale(run, now):
            seen = liveness.last_sign_of_life(run)
            line += (
                f" **Stale**: no sign of life since {timestamp(seen)} (step {run.steps_done:,}),"
                f" {duration(now - seen)} before this report's latest update; the process may have died."
            )
        return line
    if run.status is Status.SUCCESS:
        return f"{status}: trained {_steps(run)} steps {_span(run, 'in')}.{loss}"
    if run.status is Status.COMPLETED:
        reason = f" ({md.inline(run.stop_reason)})" if run.stop_reason else ""
        return f"{status}: stopped early at step {_steps(run)}{reason}, {_span(run, 'after')}.{loss}"
    failure = run.failure
    what = md.inline(failure.reason) if failure else "failed"
    if failure and failure.exc_type:
        message = (failure.message or "").strip()
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        what = md.code(failure.exc_type) + (f": {md.inline(message)}" if message else "")
    return f"{status}: {what}, at step {_steps(run)}, {_span(run, 'after')}."


def _process(run: RunRecord) -> str:
    if run.pid is None and not run.host:
        return ""
    return f"Process {md.code(run.pid)} on host {md.code(run.host or 'unknown')}"


def status_notes(run: RunRecord) -> list[str]:
    notes = []
    for received in run.signals:
        notes.append(
            f"Received {md.code(received.get('signal', '?'))} at step {int(received.get('step', 0)):,} on"
            f" {timestamp(float(received['at']))}; the program's own handler let training go on."
        )
    for resume in run.resumed:
        notes.append(
            f"Resumed from a checkpoint at step {int(resume.get('step', 0)):,} on {timestamp(float(resume['at']))}"
            f" (it was {md.code(resume.get('previous_status', '?'))})."
        )
    return notes


def logs_line(run: RunRecord) -> str:
    if run.job_url and md.safe_url(run.job_url):
        return md.link("Run Logs", run.job_url)
    if run.job_id:
        return (
            f"HF Job {md.code(run.job_id)}; set {md.code('TRL_REPORTER_JOB_OWNER')} or pass"
            f" {md.code('job_owner=')} to link its logs."
        )
    return f"Local process {md.code(run.pid)} on host {md.code(run.host or 'unknown')} (not an HF Job)."


def _logs_cell(run: RunRecord, text: str) -> str:
    if run.job_url and md.safe_url(run.job_url):
        return md.link(text, run.job_url)
    if run.job_id:
        return md.cell(f"HF Job {run.job_id}")
    return md.cell(f"local process {run.pid} on {run.host or 'unknown host'}")


def _trackio(run: RunRecord) -> dict[str, str] | None:
    info = run.trackio
    if info is None:
        return None
    url = trackio_url(info.base_url, info.project, [info.run])
    line = md.link("Trackio Logs", url)
    if info.local:
        line += f": a local dashboard; serve it with {md.code('trackio show --project ' + shlex.quote(info.project))}."
    return {"url": url, "link_line": line}


_LOWER_IS_BETTER_RE = re.compile(r"loss|perplexity|ppl|error|\b(?:c|w|t)er\b|mse|mae|rmse|bits_per_byte|bpb", re.I)


def lower_is_better(ev: Evaluation) -> bool:
    """The direction of a benchmark: as given, else lower for losses, perplexities and errors."""
    if ev.higher_is_better is not None:
        return not ev.higher_is_better
    return bool(_LOWER_IS_BETTER_RE.search(ev.benchmark))


def best_scores(runs: Sequence[RunRecord]) -> dict[str, float]:
    """The best score of every benchmark that at least two evaluations in the experiment share."""
    by_benchmark: dict[str, list[Evaluation]] = {}
    for run in runs:
        for ev in run.evaluations:
            if isinstance(ev.score, (int, float)) and not isinstance(ev.score, bool) and math.isfinite(ev.score):
                by_benchmark.setdefault(ev.benchmark, []).append(ev)
    best = {}
    for name, evs in by_benchmark.items():
        if len(evs) >= 2:
            pick = min if lower_is_better(evs[0]) else max
            best[name] = float(pick(float(e.score) for e in evs))
    return best


def _evaluation_rows(run: RunRecord, ev: Evaluation, best: dict[str, float]) -> dict[str, str]:
    """Cells of one evaluation. Its job link is the one given; a trainer evaluation's is the
    training run's own logs; a score added without a link has none."""
    if md.safe_url(ev.job_link):
        run_job_cell, job_cell = md.link("Run Logs", ev.job_link), md.link("Evaluation Job Link", ev.job_link)
    elif ev.source == "trainer":
        run_job_cell, job_cell = _logs_cell(run, "Run Logs"), _logs_cell(run, "Evaluation Job Link")
    else:
        run_job_cell = job_cell = " "
    model = ev.model_link or run.model_link
    if md.safe_url(model):
        model_cell = md.link("Model Link", model)
    else:
        model_cell = md.cell(model) if model else " "
    shown = md.cell(score(ev.score))
    if ev.benchmark in best and isinstance(ev.score, (int, float)) and float(ev.score) == best[ev.benchmark]:
        shown = f"**{shown}** (best)"
    return {
        "benchmark": ev.benchmark,
        "score_cell": shown,
        "job_link_cell": run_job_cell,
        "experiment_job_link_cell": job_cell,
        "model_link_cell": model_cell,
        "run_title_cell": run_title(run, in_table=True),
    }


def _group_lines(run: RunRecord) -> tuple[str, str]:
    model = run.base_model
    if model is None:
        model_line = "Base Model: unknown"
    elif model.url and md.safe_url(model.url):
        model_line = md.link("Base Model", model.url)
    else:
        model_line = f"Base Model: {md.code(model.name)}" + (f" ({md.inline(model.note)})" if model.note else "")
    data = run.dataset
    if data is None:
        dataset_line = f"Dataset: unknown (an in-memory or local dataset; pass {md.code('dataset=')} to name it)"
    elif data.url and md.safe_url(data.url):
        dataset_line = md.link("Dataset", data.url)
        if data.guessed:
            dataset_line += f" (guessed from the datasets cache: {md.code(data.name)}; pass {md.code('dataset=')} to be exact)"
    else:
        dataset_line = f"Dataset: {md.code(data.name)}" + (f" ({md.inline(data.note)})" if data.note else "")
    return model_line, dataset_line


def _group_key(run: RunRecord) -> tuple[str, str]:
    return (run.base_model.name if run.base_model else "", run.dataset.name if run.dataset else "")


def _dashboard(runs: Sequence[RunRecord]) -> dict[str, str] | None:
    tracked = [r for r in runs if r.trackio is not None]
    if not tracked:
        return None
    latest = tracked[-1].trackio
    assert latest is not None
    names: list[str] = []
    for r in tracked:
        info = r.trackio
        assert info is not None
        if (info.base_url, info.project) == (latest.base_url, latest.project) and info.run not in names:
            names.append(info.run)
    return {"url": trackio_url(latest.base_url, latest.project, names)}


def context(experiment: str, runs: Sequence[RunRecord], now: float | None = None) -> dict[str, Any]:
    """The template's whole input: plain data, already ordered and grouped.

    ``now`` decides which unfinished runs are stale. By default it is the latest moment recorded
    in the state (a start, an end, a heartbeat), so that rendering is a pure function of the
    state: a run is stale when others have been heard from long after it went quiet.
    """
    moments = [t for r in runs for t in (r.started_at, r.ended_at, r.heartbeat_at) if t is not None]
    latest = max(moments) if moments else None
    now = latest if now is None else now
    best = best_scores(runs)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    evaluations = []
    for run in runs:
        key = _group_key(run)
        if key not in groups:
            model_line, dataset_line = _group_lines(run)
            groups[key] = {"model_line": model_line, "dataset_line": dataset_line, "runs": []}
        rows = [_evaluation_rows(run, ev, best) for ev in run.evaluations]
        evaluations.extend(rows)
        failure = run.failure
        groups[key]["runs"].append(
            {
                "name": run.run_name,
                "status": run.status.value,
                "title": run_title(run),
                "parameters": run.parameters,
                "changed_arguments": run.changed_arguments,
                "status_line": status_line(run, now),
                "status_notes": status_notes(run),
                "traceback": failure.traceback if failure and failure.traceback else None,
                "logs_line": logs_line(run),
                "trackio": _trackio(run),
                "trackio_note": md.inline(run.trackio_note) if run.trackio_note else "No Trackio run was found for this run.",
                "evaluations": rows,
            }
        )
    return {
        "experiment": experiment,
        "updated": timestamp(latest) if latest is not None else "never",
        "dashboard": _dashboard(runs),
        "groups": list(groups.values()),
        "evaluations": evaluations,
    }


# -- jinja2 -------------------------------------------------------------------------------------


def _link_to(url: object, text: str) -> str:
    return md.link(text, url)


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> jinja2.Environment:
    loader: jinja2.BaseLoader
    if template_dir is None:
        loader = jinja2.FunctionLoader(lambda name: default_template_text() if name == TEMPLATE_NAME else None)
    else:
        loader = jinja2.FileSystemLoader(template_dir, encoding="utf-8")
    # A sandbox even for the user's own template: a template is data, and one copied from
    # somewhere must not be able to reach Python (``cycler.__init__.__globals__.os``).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # markdown, escaped by the filters below
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters.update(
        inline=md.inline, cell=md.cell, code=md.code, attr=md.attr, code_block=md.code_block, link_to=_link_to
    )
    return env


def chosen_template(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The template the person running this names: the argument, else ``$TRL_REPORTER_TEMPLATE``,
    else ``None`` (the packaged one). Never a path read from saved state."""
    chosen = explicit if explicit not in (None, "") else environ.get(TEMPLATE_ENV) or None
    return str(Path(chosen).expanduser().resolve()) if chosen is not None else None


def default_template_path() -> Path:
    """The shipped template: inside the installed package, or the repository's ``templates/``."""
    packaged = resources.files("trl_reporter").joinpath("templates", TEMPLATE_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates" / TEMPLATE_NAME


@functools.lru_cache(maxsize=1)
def default_template_text() -> str:
    return default_template_path().read_text(encoding="utf-8")


def renderer(template: str | Path | None = None, *, now: float | None = None) -> Callable[[str, list[RunRecord]], str]:
    """A function ``(experiment, runs) -> markdown`` for the default or a user template.

    ``now`` is the moment against which quiet runs are judged stale; by default the latest moment
    in the state, which keeps rendering a pure function of the state. The CLI passes the clock.
    """
    if template is None:
        tmpl = _environment(None).get_template(TEMPLATE_NAME)
    else:
        path = Path(template).expanduser().resolve()
        if not path.is_file():
            raise TemplateError(f"report template {str(path)!r} does not exist")
        try:
            tmpl = _environment(str(path.parent)).get_template(path.name)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"report template {str(path)!r} is invalid: {exc}") from exc

    def render(experiment: str, runs: list[RunRecord]) -> str:
        try:
            text = tmpl.render(**context(experiment, runs, now))
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(f"report template tried something unsafe and was stopped: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"report template failed to render: {exc}") from exc
        return text.rstrip("\n") + "\n"

    return render
