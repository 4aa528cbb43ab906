"""``trl-report``: read and tend the training reports from a terminal.

    trl-report list
    trl-report show EXPERIMENT [--json]
    trl-report add-eval EXPERIMENT RUN --benchmark NAME --score X [--job-link URL] [--model-link URL]
    trl-report import-eval EXPERIMENT RUN FILE
    trl-report reconcile
    trl-report render [EXPERIMENT]
    trl-report pull SOURCE [EXPERIMENT] [--watch [--every SECONDS]]

RUN is a run's key (``show`` lists them), or its name when no other run of the experiment has it.
Works on ``training_reports/`` at the project root, or ``--report-dir``, and renders with the
packaged template, or the one named by ``--template`` or ``$TRL_REPORTER_TEMPLATE`` (never one
named by saved state). Data goes to stdout, diagnostics to stderr. Every command first checks its
input (nothing is written for bad input), then marks runs of this host whose process vanished as
Failure, as the callback does at start, and brings every report it reads that is behind its
saved state up to date. Starting it imports neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, maintenance, naming
from .catalog import experiments, find_experiment
from .errors import DestinationError, TrlReporterError
from .evals import Score, read_results
from .formatting import duration, score, utc
from .liveness import stale
from .maintenance import LOCK_TIMEOUT_COMMAND
from .records import RunRecord, Source, Status, json_safe
from .store import ExperimentStore
from .template import chosen_template, renderer

_RUN_HELP = "the run's key (see show), or its name if no other run has it"
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own exit code 2, with our prefix
        self.print_usage(sys.stderr)
        self.exit(2, f"trl-report: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--report-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the reports folder (default: $TRL_REPORTER_DIR, else training_reports/ at the project root)",
    )
    common.add_argument(
        "--template",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="render with this jinja2 template (default: $TRL_REPORTER_TEMPLATE, else the packaged one)",
    )
    parser = _Parser(prog="trl-report", description="Read and tend trl-reporter training reports.", parents=[common])
    parser.add_argument("--version", action="version", version=f"trl-report {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", parents=[common], help="the experiments, with their runs counted by status")
    show = sub.add_parser("show", parents=[common], help="an experiment's runs as a table")
    show.add_argument("experiment")
    show.add_argument("--json", action="store_true", help="print JSON, for scripts")

    add = sub.add_parser("add-eval", parents=[common], help="add a benchmark score to a run")
    add.add_argument("experiment")
    add.add_argument("run", help=_RUN_HELP)
    add.add_argument("--benchmark", required=True)
    add.add_argument("--score", required=True)
    add.add_argument("--job-link", help="the evaluation job's URL (default inside an HF Job: that job)")
    add.add_argument("--model-link", help="the evaluated model's URL (default: the run's model)")

    imp = sub.add_parser(
        "import-eval", parents=[common], help="import an lm-evaluation-harness or lighteval results JSON"
    )
    imp.add_argument("experiment")
    imp.add_argument("run", help=_RUN_HELP)
    imp.add_argument("file", type=Path)
    imp.add_argument("--job-link", help="the evaluation job's URL (default inside an HF Job: that job)")
    imp.add_argument("--model-link", help="the evaluated model's URL (default: the run's model)")

    sub.add_parser("reconcile", parents=[common], help="mark runs whose process vanished as Failure")
    ren = sub.add_parser("render", parents=[common], help="re-render reports from their saved state")
    ren.add_argument("experiment", nargs="?")
    pull = sub.add_parser(
        "pull", parents=[common], help="merge runs published elsewhere (a directory, a Hub repo, a bucket) into these"
    )
    pull.add_argument(
        "source",
        help="a directory, hf://datasets/<ns>/<name>[/<path>], hf://<ns>/<name>[/<path>] (a model repo: "
        "its training_reports folder), or hf://buckets/<ns>/<name>[/<path>]",
    )
    pull.add_argument("experiment", nargs="?", help="only this experiment (default: all of them)")
    pull.add_argument("--watch", action="store_true", help="pull again until every run pulled has ended")
    pull.add_argument("--every", type=float, default=30.0, metavar="SECONDS", help="with --watch (default: 30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the one place where errors become messages and exit codes."""
    args = _parser().parse_args(argv)
    root = naming.report_dir(getattr(args, "report_dir", None))
    try:
        args.render = renderer(chosen_template(getattr(args, "template", None)), now=time.time())
        return _COMMANDS[args.command](args, root)
    except TrlReporterError as exc:
        print(f"trl-report: error: {_plain(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        print(f"trl-report: error: {type(exc).__name__}: {_plain(exc)}", file=sys.stderr)
        return 1


# -- commands -----------------------------------------------------------------------------------


def _plain(text: object) -> str:
    """Text a run or file controls, made safe for a terminal (no escape sequences)."""
    return _CONTROL_RE.sub("?", str(text))


def _reconcile(args: argparse.Namespace, root: Path) -> list[RunRecord]:
    changed = maintenance.reconcile(experiments(root), args.render, timeout=LOCK_TIMEOUT_COMMAND)
    for run in changed:
        print(
            f"trl-report: run {_plain(run.run_name)!r} of {_plain(run.experiment)!r}: marked Failure, the process "
            "vanished",
            file=sys.stderr,
        )
    return changed


def _catch_up(args: argparse.Namespace, stores: Sequence[ExperimentStore]) -> None:
    for store in maintenance.catch_up(stores, args.render, timeout=LOCK_TIMEOUT_COMMAND):
        print(
            f"trl-report: the report of {_plain(store.experiment)!r} is behind its state and locked by another "
            "writer; try again",
            file=sys.stderr,
        )


def _list(args: argparse.Namespace, root: Path) -> int:
    _reconcile(args, root)
    stores = experiments(root)
    _catch_up(args, stores)
    if not stores:
        print(f"trl-report: no experiments in {root}", file=sys.stderr)
        return 0
    rows = []
    for store in stores:
        runs = [source.facts for source in store.sources()]
        counts = {s: sum(r["status"] == s.value for r in runs) for s in Status}
        rows.append(
            [_plain(store.experiment), str(len(runs)), *(str(counts[s]) for s in Status), store.report_path.name]
        )
    _table(["EXPERIMENT", "RUNS", *(s.value.upper() for s in Status), "REPORT"], rows)
    return 0


def _run_summary(run: RunRecord, now: float) -> dict[str, Any]:
    end = run.ended_at if run.ended_at is not None else now
    model_link = run.shown_model_link()
    return {
        "run": run.run_name,
        "key": run.key,
        "status": run.status.value,
        "stale": stale(run, now),
        "started": utc(run.started_at),
        "ended": utc(run.ended_at) if run.ended_at is not None else None,
        "duration_seconds": round(max(0.0, end - run.started_at - run.paused), 3),  # training time
        "steps_done": run.steps_done,
        "steps_planned": run.steps_planned,
        "final_loss": run.final_loss,
        "mean_loss": run.mean_loss,
        "failure": run.failure.reason.value if run.failure else None,
        # As the report shows them: one per benchmark, the latest added, with the run's model link.
        "evaluations": [
            {
                "benchmark": e.benchmark,
                "score": e.score,
                "source": e.source.value,
                "job_link": e.job_link,
                "model_link": model_link,
            }
            for e in run.shown_evaluations()
        ],
        # Every saved evaluation, in the order added, as it was saved.
        "evaluation_history": [
            {
                "benchmark": e.benchmark,
                "score": e.score,
                "source": e.source.value,
                "job_link": e.job_link,
                "model_link": e.model_link,
                "step": e.step,
                "added_at": utc(e.added_at) if e.added_at is not None else None,
                "higher_is_better": e.higher_is_better,
            }
            for e in run.evaluations
        ],
    }


def _show(args: argparse.Namespace, root: Path) -> int:
    store = find_experiment(root, args.experiment)
    _reconcile(args, root)
    _catch_up(args, [store])
    now = time.time()
    runs = [_run_summary(r, now) for r in store.load_runs()]
    if args.json:
        data = {"experiment": store.experiment, "report": str(store.report_path), "runs": runs}
        print(json.dumps(json_safe(data), indent=2, allow_nan=False))  # NaN and infinities as strings
        return 0
    rows = []
    for r in runs:
        steps = f"{r['steps_done']:,}" + (f"/{r['steps_planned']:,}" if r["steps_planned"] else "")
        rows.append(
            [
                _plain(r["run"]),
                _plain(r["key"]),
                r["status"] + (" (stale)" if r["stale"] else ""),
                r["started"],
                duration(r["duration_seconds"]),
                steps,
                score(r["final_loss"]) if r["final_loss"] is not None else "-",
                _plain(", ".join(f"{e['benchmark']}={score(e['score'])}" for e in r["evaluations"])) or "-",
            ]
        )
    print(f"{_plain(store.experiment)}  ({_plain(store.report_path)})")
    _table(["RUN", "KEY", "STATUS", "STARTED (UTC)", "DURATION", "STEPS", "FINAL LOSS", "EVALUATIONS"], rows)
    return 0


def _add_scores(args: argparse.Namespace, root: Path, scores: list[Score], source: Source) -> int:
    """Check everything first (nothing is written for bad input), then add and render."""
    store = find_experiment(root, args.experiment)
    plan = maintenance.check_scores(store, args.run, scores, job_link=args.job_link, model_link=args.model_link)
    _reconcile(args, root)
    for ev in maintenance.save_scores(plan, args.render, source=source, timeout=LOCK_TIMEOUT_COMMAND):
        print(f"{_plain(plan.run.run_name)}\t{_plain(ev.benchmark)}\t{score(ev.score)}")
    maintenance.publish_if_asked(store, args.render)
    return 0


def _add_eval(args: argparse.Namespace, root: Path) -> int:
    return _add_scores(args, root, [Score(args.benchmark, args.score)], Source.CLI)


def _import_eval(args: argparse.Namespace, root: Path) -> int:
    tool, scores = read_results(args.file)
    code = _add_scores(args, root, scores, tool)
    print(f"trl-report: imported {len(scores)} scores from {tool.value} results {args.file}", file=sys.stderr)
    return code


def _reconcile_command(args: argparse.Namespace, root: Path) -> int:
    stores = experiments(root)
    changed = maintenance.reconcile(stores, args.render, timeout=LOCK_TIMEOUT_COMMAND)
    _catch_up(args, stores)
    for run in changed:
        print(
            f"{_plain(run.experiment)}\t{_plain(run.run_name)}\tFailure\t{run.failure.reason.value if run.failure else ''}"
        )
    print(f"trl-report: {len(changed)} run(s) marked Failure", file=sys.stderr)
    return 0


def _render(args: argparse.Namespace, root: Path) -> int:
    stores = [find_experiment(root, args.experiment)] if args.experiment else experiments(root)
    _reconcile(args, root)
    for store in stores:
        maintenance.rerender(store, args.render, timeout=LOCK_TIMEOUT_COMMAND)
        print(store.report_path)
    return 0


def _pull(args: argparse.Namespace, root: Path) -> int:
    from .destinations import parse
    from .pull import Puller, watch

    source = parse(args.source, reading=True)
    if args.every <= 0:
        raise DestinationError("--every must be a positive number of seconds")
    _reconcile(args, root)

    def say(results: list[Any], left: list[RunRecord]) -> None:
        for result in results:
            store = ExperimentStore(root, result.experiment)
            print(
                f"{_plain(result.experiment)}: {len(result.added)} new run(s), {len(result.updated)} updated, "
                f"{result.evaluations} evaluation file(s) -> {store.report_path}"
            )
        if args.watch and left:
            names = ", ".join(f"{_plain(r.run_name)} ({r.status.value}, step {r.steps_done})" for r in left)
            print(f"trl-report: following {names}; next pull in {args.every:g} s", file=sys.stderr)

    with Puller(source, root, args.experiment, args.render) as puller:
        if args.watch:
            if not watch(puller, args.every, say):
                print("trl-report: nothing was published there within 15 minutes", file=sys.stderr)
        else:
            say(puller.pull(), [])
    return 0


_COMMANDS = {
    "list": _list,
    "show": _show,
    "add-eval": _add_eval,
    "import-eval": _import_eval,
    "reconcile": _reconcile_command,
    "render": _render,
    "pull": _pull,
}


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    for line in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
