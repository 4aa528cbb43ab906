"""Hostile saved state, as a collaborator could commit it: paths that climb out, values of the
wrong type, templates that try to run code. Shared by the test suite (a few hundred attacks) and
``bench/reliability.py`` (thousands), which count escapes, code run and frozen experiments."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from trl_reporter.cli import main as cli_main
from trl_reporter.records import RunRecord, Status
from trl_reporter.store import ExperimentStore

ESCAPING_IDS = [
    "../../../../escaped/evil",
    "../escaped",
    "..",
    ".",
    "/tmp/escaped-abs",
    "a/../../escaped",
    "runs/../../x",
    "..\\..\\escaped",
    "x\x00y",
    "C:\\escaped",
    "~/escaped",
    "a" * 300,
    "",
    " ",
    ".hidden",
    "CON",
    "nul.json",
]
TEMPLATE_PAYLOADS = [
    '{{ cycler.__init__.__globals__.os.system("touch PWNED") }}',
    '{{ joiner.__init__.__globals__.os.system("touch PWNED") }}',
    '{{ namespace.__init__.__globals__.os.system("touch PWNED") }}',
    '{{ lipsum.__globals__["os"].popen("touch PWNED").read() }}',
    '{{ "".__class__.__mro__[1].__subclasses__() }}',
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ experiment.__class__.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../../../etc/passwd' %}",
    "{{ groups.append(1) }}{{ groups }}",
    "{{ config }}",
]
FIELDS = [f.name for f in dataclasses.fields(RunRecord)] + ["schema"]


def hostile_value(rng: random.Random, depth: int = 0) -> object:
    """A JSON value of any type, with the edge cases trl-reporter must survive."""
    choices: list[object] = [
        None,
        True,
        False,
        0,
        -1,
        2**31,
        10**40,
        -(10**40),
        1e20,
        1e308,
        -1e308,
        0.5,
        "nan",
        "inf",
        "-inf",
        "",
        "x" * 5000,
        "../../x",
        "javascript:alert(1)",
        "<script>alert(1)</script>",
        "a|b",
        "\udcff",
        "In Progress",
        "Exploded",
        [],
        {},
        [1, 2],
        ["a", "b"],
        [["a", "b", "c"]],
        [[1, 2]],
        {"name": 5},
        {"name": "x", "url": 3},
        {"at": "yesterday"},
        [{"at": 1e20}],
        [{"benchmark": 3, "score": 1}],
        [{"benchmark": "b", "score": 10**400}],
        [{"benchmark": "b", "score": "NaN"}],
        {"project": "p", "run": "r", "base_url": "javascript:x", "local": "yes"},
        {"reason": 3},
        [["effective_batch_size", {"per_device": "x", "accumulation": 1, "devices": 1}]],
        [["parameters", {"total": 0, "trainable": 5}]],
        [["trainer", {"class": "A", "versions": [["x"]]}]],
        [["lora", {"type": 1, "targets": [1]}], ["scheduler", {"type": "x", "warmup_ratio": [1]}]],
        [["text", ["only a label"]], ["devices", {"count": True, "kind": "CPU"}], ["seed", {"a": 1}]],
        "nohost",
        "h/b/n",
        1_700_000_000.0,
    ]
    value = rng.choice(choices)
    if depth < 2 and rng.random() < 0.15:
        return [hostile_value(rng, depth + 1)] if rng.random() < 0.5 else {"k": hostile_value(rng, depth + 1)}
    return value


@dataclass
class Tally:
    attacks: int = 0
    escapes: int = 0
    code_run: int = 0
    frozen: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.attacks > 0 and self.escapes == 0 and self.code_run == 0 and self.frozen == 0


def _quiet_cli(*args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli_main(list(args))


def store_with_a_good_run(root: Path) -> ExperimentStore:
    """An experiment ``exp`` with one finished run ``good``."""
    store = ExperimentStore(root, "exp")
    store.save_run(
        RunRecord(
            key="good",
            run_name="good",
            experiment="exp",
            started_at=1_700_000_000.0,
            status=Status.SUCCESS,
            ended_at=1_700_000_060.0,
            steps_done=4,
            steps_planned=4,
        )
    )
    return store


def _files(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def path_attacks(base: Path) -> Tally:
    """Run files whose run_id climbs out, used by add-eval, render and a resume-like claim."""
    tally = Tally()
    for i, run_id in enumerate(ESCAPING_IDS):
        sandbox = base / f"path-{i}"
        root = sandbox / "project" / "training_reports"
        store = store_with_a_good_run(root)
        data = RunRecord(key="x", run_name="victim", experiment="exp", started_at=1_700_000_100.0).to_dict()
        data["key"] = run_id
        (store.runs_dir / "victim.json").write_text(json.dumps(data))
        outside = _files(sandbox) - _files(root)
        codes = [
            _quiet_cli("--report-dir", str(root), "add-eval", "exp", "victim", "--benchmark", "b", "--score", "1"),
            _quiet_cli("--report-dir", str(root), "render"),
            _quiet_cli("--report-dir", str(root), "show", "exp"),
        ]
        from trl_reporter.catalog import claim_run

        try:
            key, _, _ = claim_run(store, "victim", resuming=True, generated=False)
            store.run_path(key)
        except Exception as exc:  # noqa: BLE001 - any refusal is fine; an escape is not
            tally.notes.append(f"claim refused: {type(exc).__name__}")
        tally.attacks += 1
        tally.escapes += bool(_files(sandbox) - _files(root) - outside)
        report = store.report_path.read_text() if store.report_path.exists() else ""
        tally.frozen += codes[1] != 0 or codes[2] != 0 or "good" not in report
    return tally


def type_attacks(base: Path, trials: int, seed: int = 0) -> Tally:
    """Run and evaluation files with one or more fields of the wrong type or an impossible value."""
    rng = random.Random(seed)
    tally = Tally()
    root = base / "types" / "training_reports"
    store = store_with_a_good_run(root)
    batch = 25  # attack files per round of commands
    for start in range(0, trials, batch):
        for path in list(store.runs_dir.glob("bad-*.json")) + list(store.evals_dir.glob("*/*.json")):
            path.unlink()
        for n in range(start, min(start + batch, trials)):
            key = f"bad-{n}"
            data = RunRecord(key=key, run_name=key, experiment="exp", started_at=1_700_000_000.0 + n).to_dict()
            for name in rng.sample(FIELDS, rng.randint(1, 3)):
                data[name] = hostile_value(rng)
            if rng.random() < 0.05:
                text = json.dumps(hostile_value(rng))
            else:
                text = json.dumps(data)
            (store.runs_dir / f"{key}.json").write_text(text)
            evals = store.evals_dir / "good"
            evals.mkdir(parents=True, exist_ok=True)
            rows = [{"benchmark": hostile_value(rng), "score": hostile_value(rng), "step": hostile_value(rng)}]
            (evals / f"{n:08d}.json").write_text(json.dumps({"schema": 1, "evaluations": rows}))
            tally.attacks += 1
        codes = [_quiet_cli("--report-dir", str(root), *c) for c in (["list"], ["show", "exp", "--json"], ["render"])]
        report = store.report_path.read_text() if store.report_path.exists() else ""
        if any(codes) or "`good`" not in report:
            tally.frozen += min(batch, trials - start)
            tally.notes.append(f"commands exited {codes}")
    return tally


def template_attacks(base: Path) -> Tally:
    """Templates that try to reach Python or files, named by the user or planted in experiment.json."""
    tally = Tally()
    for i, payload in enumerate(TEMPLATE_PAYLOADS):
        sandbox = base / f"template-{i}"
        root = sandbox / "training_reports"
        store = store_with_a_good_run(root)
        evil = sandbox / "evil.md.j2"
        evil.write_text(payload)
        meta = json.loads(store.meta_path.read_text())
        meta["template"] = str(evil)
        store.meta_path.write_text(json.dumps(meta))
        cwd = os.getcwd()
        os.chdir(sandbox)  # a relative template path in experiment.json resolved against it
        try:
            planted = _quiet_cli("--report-dir", str(root), "render")
            named = _quiet_cli("--report-dir", str(root), "render", "--template", str(evil))
        finally:
            os.chdir(cwd)
        report = store.report_path.read_text() if store.report_path.exists() else ""
        tally.attacks += 2
        tally.code_run += sum(1 for p in (sandbox / "PWNED", Path("PWNED")) if p.exists())
        tally.code_run += "root:x:0:0" in report or "subprocess.Popen" in report or "__globals__" in report
        tally.frozen += planted != 0  # the planted template is ignored: the render works
        if named not in (0, 2):
            tally.frozen += 1
    return tally
