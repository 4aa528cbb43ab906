"""The charts' data: the right points, downsampling that keeps extremes, gaps for NaN, the same
bytes for the same state, and a history that stays small however long the run."""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from trl_reporter import charts, history
from trl_reporter.errors import RecordError
from trl_reporter.history import History, downsample
from trl_reporter.records import RunRecord, Status
from trl_reporter.store import ExperimentStore
from trl_reporter.template import renderer

SVG = "{http://www.w3.org/2000/svg}"


def _paths(svg: str) -> list[str]:
    return [p.get("d", "") for p in ET.fromstring(svg).iter(f"{SVG}path")]


def test_downsampling_keeps_every_extreme_and_both_ends() -> None:
    rng = random.Random(7)
    points = [(step, rng.gauss(0, 1) + 3 / (1 + step)) for step in range(1, 100_001)]
    points[31_337] = (31_338, -50.0)  # a spike down
    points[77_001] = (77_002, 80.0)  # a spike up
    kept = downsample(points, 256)
    assert len(kept) <= 258
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (31_338, -50.0) in kept and (77_002, 80.0) in kept
    assert [s for s, _ in kept] == sorted({s for s, _ in kept})  # in step order, no repeats
    # Each step range keeps its own lowest and highest value.
    width = (points[-1][0] - points[0][0]) / 127
    for bucket in (0, 40, 126):
        inside = [p for p in points if int((p[0] - 1) / width) == bucket]
        assert min(inside, key=lambda p: p[1]) in kept and max(inside, key=lambda p: p[1]) in kept


def test_a_short_series_is_kept_as_it_is() -> None:
    points = [(5, 3.9), (10, 3.7), (15, 3.58)]
    assert downsample(points, 256) == points


def test_a_million_step_run_keeps_a_bounded_history() -> None:
    kept = History()
    for step in range(1, 1_000_001):
        kept.add("loss", step, 1 / step if step != 500_000 else math.nan)
    assert len(kept.series["loss"]) < 2 * history.MAX_POINTS
    assert kept.series["loss"][0] == (1, 1.0) and kept.series["loss"][-1][0] == 1_000_000
    assert any(math.isnan(v) for _, v in kept.series["loss"])  # the NaN survives, to be drawn as a gap
    assert len(json.dumps(kept.to_dict())) < 20_000


def test_a_resumed_run_replaces_the_steps_it_replays() -> None:
    kept = History()
    for step in (10, 20, 30, 40):
        kept.add("loss", step, float(step))
    kept.truncate(20)
    kept.add("loss", 30, 1.0)
    assert kept.series["loss"] == [(10, 10.0), (20, 20.0), (30, 1.0)]


def test_run_chart_draws_the_points_it_was_given() -> None:
    data = charts.run_chart("r", {"loss": [(0, 4.0), (10, 2.0)], "eval_loss": [(10, 3.0)]})
    assert data is not None
    [panel] = data["panels"]
    train, evaluation = panel["lines"]
    assert [train["name"], evaluation["name"]] == ["training loss", "eval loss"]
    # x: steps 0..10 span the plot; y: 4.0 at the top tick, 2.0 at the bottom one.
    assert train["d"] == f"M{panel['left']:.1f} {panel['top']:.1f} L{panel['right']:.1f} {panel['bottom']:.1f}"
    assert [t["label"] for t in panel["yticks"]][0] == "2.0" and panel["yticks"][-1]["label"] == "4.0"
    assert evaluation["markers"] == [[panel["right"], round((panel["top"] + panel["bottom"]) / 2, 1)]]


def test_nan_and_infinity_are_gaps_not_crashes() -> None:
    series = {"loss": [(1, 3.0), (2, math.nan), (3, 2.5), (4, math.inf), (5, 2.0), (6, 1.5)]}
    data = charts.run_chart("r", series)
    assert data is not None
    d = data["panels"][0]["lines"][0]["d"]
    assert d.count("M") == 3 and d.count("L") == 1  # three pieces: [1], [3], [5, 6]
    svg = renderer().draw_chart(data)
    ET.fromstring(svg)
    only_nan = charts.run_chart("r", {"loss": [(1, math.nan), (2, math.nan)]})
    assert only_nan is not None and only_nan["panels"][0]["empty"]
    ET.fromstring(renderer().draw_chart(only_nan))


def test_the_same_state_gives_the_same_bytes() -> None:
    series = {"loss": [(s, 4 / (1 + s)) for s in range(0, 500, 5)], "eval_loss": [(100, 0.5), (200, 0.3)]}
    draw = renderer().draw_chart
    one = draw(charts.run_chart("run <&> \x01 name", series) or {})
    two = draw(charts.run_chart("run <&> \x01 name", {k: list(v) for k, v in series.items()}) or {})
    assert one == two
    root = ET.fromstring(one)  # the title's markup and control character are escaped, not XML errors
    assert root.find(f"{SVG}title").text == "run <&> \ufffd name"  # type: ignore[union-attr]


def test_overlay_has_a_legend_of_the_latest_runs() -> None:
    runs = [(f"run-{i}", [(s, 3 - i / 50 - s / 100) for s in range(0, 100, 10)]) for i in range(30)]
    data = charts.overlay_chart("Training loss of every run", runs)
    assert data is not None
    assert [e["name"] for e in data["legend"]] == [f"run-{i}" for i in range(10, 30)]
    assert len(_paths(renderer().draw_chart(data))) == 20


def test_ticks_are_round_and_cover_the_data() -> None:
    ticks, decimals = charts.nice_ticks(3.21, 3.97, 4)
    assert ticks[0] <= 3.21 and ticks[-1] >= 3.97 and decimals == 1
    steps, _ = charts.nice_ticks(15, 30, 6, whole=True)
    assert all(s == int(s) for s in steps)


@pytest.mark.parametrize(
    "saved",
    [
        {"series": {"loss": [[2, 1.0], [1, 2.0]]}},  # steps out of order
        {"series": {"loss": [[1, "x"]]}},
        {"series": {"loss": [[1, True]]}},
        {"series": {"loss": [[1, 10**400]]}},
        {"series": {f"s{i}": [] for i in range(50)}},
        {"series": {"loss": [[i, 1.0] for i in range(5000)]}},
        {"series": []},
    ],
)
def test_a_saved_history_is_checked(saved: object) -> None:
    with pytest.raises(RecordError):
        history.load(saved)


def test_charts_are_written_beside_the_report_and_only_when_their_data_changed(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    record = RunRecord(key="a", run_name="a", experiment="exp", started_at=1_700_000_000.0)
    curves = History()
    for step in range(1, 50):
        curves.add("loss", step, 5 / step)
    record.curves = curves.names()
    store.save_run(record, curves)
    render = renderer()
    assert store.render(render, timeout=5)
    chart = tmp_path / "training_reports" / "exp" / "runs" / "a.svg"
    overlay = tmp_path / "training_reports" / "exp" / "loss.svg"
    assert chart.is_file() and overlay.is_file()
    assert "![Loss of a](exp/runs/a.svg)" in store.report_path.read_text()
    before = (chart.stat().st_mtime_ns, overlay.stat().st_mtime_ns)

    record.finish(Status.SUCCESS, at=1_700_000_100.0)
    store.save_run(record)  # the run changed, its curves did not
    assert store.render(render, timeout=5)
    assert (chart.stat().st_mtime_ns, overlay.stat().st_mtime_ns) == before

    curves.add("loss", 60, 0.01)
    store.save_run(record, curves)
    assert store.render(render, timeout=5)
    assert chart.stat().st_mtime_ns != before[0]

    store.history_path("a").unlink()  # history lost: the chart goes, and the report stops linking it
    record.curves = []
    store.save_run(record)
    assert store.render(render, timeout=5)
    assert not chart.exists() and "a.svg" not in store.report_path.read_text()


def test_charts_are_never_written_through_a_symlink(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "training_reports" / "exp").symlink_to(outside)
    record = RunRecord(key="a", run_name="a", experiment="exp", started_at=1_700_000_000.0)
    curves = History()
    curves.add("loss", 1, 1.0)
    record.curves = curves.names()
    store.save_run(record, curves)
    assert store.render(renderer(), timeout=5)
    assert list(outside.iterdir()) == []
    assert ".svg" not in store.report_path.read_text()


def test_a_metric_name_too_long_to_save_is_left_out_not_fatal(tmp_path: Path) -> None:
    kept = History()
    kept.add("eval_" + "x" * 300, 1, 1.0)
    kept.add("loss", 1, 2.0)
    assert kept.names() == ["loss"]
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    record = RunRecord(key="a", run_name="a", experiment="exp", started_at=1_700_000_000.0, curves=kept.names())
    store.save_run(record, kept)  # the run file and its history load back
    assert store.load_run("a") is not None and store.load_history("a") is not None


def test_a_history_planted_as_a_symlink_is_not_followed(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    record = RunRecord(key="a", run_name="a", experiment="exp", started_at=1_700_000_000.0, curves=["loss"])
    store.save_run(record)
    store.history_path("a").parent.mkdir(parents=True, exist_ok=True)
    store.history_path("a").symlink_to("/dev/zero")  # a commit can hold this
    assert store.load_history("a") is None
    assert store.render(renderer(), timeout=5) and "a.svg" not in store.report_path.read_text()


def test_a_history_rewritten_behind_an_unchanged_run_is_drawn_again(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    curves = History()
    curves.add("loss", 1, 1.0)
    record = RunRecord(key="a", run_name="a", experiment="exp", started_at=1_700_000_000.0, curves=curves.names())
    store.save_run(record, curves)
    assert store.render(renderer(), timeout=5)
    chart = store.chart_dir / "runs" / "a.svg"
    before = chart.read_bytes()
    curves.add("loss", 2, 7.5)  # what a checkout of history/ alone does
    store.history_path("a").write_text(json.dumps(curves.to_dict()))
    assert store.render(renderer(), timeout=5)
    assert chart.read_bytes() != before  # its y axis now reaches 7.5


def test_one_extreme_history_costs_only_its_own_chart(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    for key, values in (("tiny", [5e-324, 1e-323]), ("huge", [-1.7e308, 1.7e308]), ("plain", [3.0, 2.0])):
        curves = History()
        for step, value in enumerate(values, 1):
            curves.add("loss", step, value)
        record = RunRecord(key=key, run_name=key, experiment="exp", started_at=1_700_000_000.0, curves=curves.names())
        store.save_run(record, curves)
    assert store.render(renderer(), timeout=5)
    for key in ("tiny", "huge", "plain"):
        ET.fromstring((store.chart_dir / "runs" / f"{key}.svg").read_bytes())


def test_the_overlay_says_when_it_shows_only_the_latest_runs(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    for i in range(charts.MAX_OVERLAY_RUNS + 2):
        curves = History()
        curves.add("loss", 1, 3.0 - i / 100)
        record = RunRecord(key=f"r{i}", run_name=f"r{i}", experiment="exp", started_at=1e9 + i, curves=curves.names())
        store.save_run(record, curves)
    assert store.render(renderer(), timeout=5)
    overlay = ET.fromstring((store.chart_dir / "loss.svg").read_bytes())
    assert overlay.find(f"{SVG}title").text == "Training loss of the latest 20 of 22 runs"  # type: ignore[union-attr]


def test_runs_that_share_a_name_are_told_apart_in_the_overlay_by_their_keys(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "training_reports", "exp")
    for i, key in enumerate(("tiny", "tiny-2", "other")):
        curves = History()
        curves.add("loss", 1, 3.0 - i / 10)
        name = "other" if key == "other" else "tiny"
        record = RunRecord(key=key, run_name=name, experiment="exp", started_at=1e9 + i, curves=curves.names())
        store.save_run(record, curves)
    assert store.render(renderer(), timeout=5)
    overlay = ET.fromstring((store.chart_dir / "loss.svg").read_bytes())
    legend = [t.text for t in overlay.iter(f"{SVG}text")][-3:]
    assert legend == ["tiny", "tiny-2", "other"]
