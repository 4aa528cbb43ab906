"""A run's logged curves, kept small: each series is a list of ``(step, value)`` points,
downsampled by step range so that a million-step run holds a few hundred points per curve.

Downsampling keeps, in each range of steps, the lowest and the highest value (so every minimum and
maximum of the run survives), the first and the last point, and one non-finite value where there
were any (a NaN is drawn as a gap, never smoothed away). Points are added in memory on every log;
the history is written only where the run's state is saved anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import RecordError

# Points per series once compacted; a series is compacted when it reaches twice this.
MAX_POINTS = 256
MAX_SERIES = 12
# What a saved history may hold (anything larger is not ours): the compaction bound, with room.
_MAX_SAVED_POINTS = 4 * MAX_POINTS
MAX_NAME = 200


def valid_name(name: object) -> bool:
    """A curve name a history keeps and a saved run may list: 1 to 200 characters of valid
    Unicode (a metric name past that is skipped, never a reason the run cannot be saved)."""
    if type(name) is not str or not 0 < len(name) <= MAX_NAME:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


Point = tuple[int, float]


def downsample(points: list[Point], limit: int) -> list[Point]:
    """At most about ``limit`` points of ``points`` (in step order): per step range, the lowest and
    highest finite values and the first non-finite one, plus the first and last points."""
    if len(points) <= limit:
        return list(points)
    first, last = points[0][0], points[-1][0]
    buckets = max(1, limit // 2 - 1)
    width = (last - first) / buckets or 1
    chosen: dict[int, dict[str, int]] = {}
    for index, (step, value) in enumerate(points):
        bucket = min(int((step - first) / width), buckets - 1)
        slot = chosen.setdefault(bucket, {})
        if not math.isfinite(value):
            slot.setdefault("gap", index)
            continue
        if "low" not in slot or value < points[slot["low"]][1]:
            slot["low"] = index
        if "high" not in slot or value > points[slot["high"]][1]:
            slot["high"] = index
    keep = {0, len(points) - 1}
    for slot in chosen.values():
        keep.update(slot.values())
    return [points[i] for i in sorted(keep)]


class History:
    """The curves of one run: ``loss`` and the evaluation metrics, by name."""

    def __init__(self, series: Mapping[str, list[Point]] | None = None) -> None:
        self.series: dict[str, list[Point]] = {name: list(points) for name, points in (series or {}).items()}
        self.changed = False

    def add(self, name: str, step: int, value: float) -> None:
        """Add a point; a step at or before the last one (a resumed run replays its steps) replaces
        the points from there on."""
        points = self.series.get(name)
        if points is None:
            if len(self.series) >= MAX_SERIES or not valid_name(name):
                return
            points = self.series[name] = []
        while points and points[-1][0] >= step:
            points.pop()
        points.append((step, value))
        if len(points) >= 2 * MAX_POINTS:
            points[:] = downsample(points, MAX_POINTS)
        self.changed = True

    @classmethod
    def replay(cls, log_history: object, until: int, skip: tuple[str, ...]) -> History:
        """The curves as the Trainer logged them up to step ``until`` (``state.log_history``, as a
        checkpoint restores it): the training loss, and the evaluation metrics but ``skip``."""
        history = cls()
        for entry in log_history if isinstance(log_history, list) else []:
            step = entry.get("step") if isinstance(entry, dict) else None
            if type(step) is not int or not 0 <= step <= until:
                continue
            for name, value in entry.items():
                if (name == "loss" or (name.startswith("eval_") and not name.endswith(skip))) and isinstance(
                    value, (int, float)
                ):
                    history.add(name, step, float(value))
        return history

    @classmethod
    def resumed(cls, log_history: object, until: int, skip: tuple[str, ...], saved: History | None) -> History:
        """The curves of a run resumed at step ``until``: the checkpoint's own log (complete, where
        a part that vanished saved only some), else the saved curves cut at that step."""
        history = cls.replay(log_history, until, skip)
        if "loss" not in history.series:
            history = saved or cls()
            history.truncate(until)
        history.changed = True
        return history

    def mean(self, name: str = "loss") -> float | None:
        """The mean of a series' finite values (of its kept points), if it has any."""
        values = [v for _, v in self.series.get(name, []) if math.isfinite(v)]
        return sum(values) / len(values) if values else None

    def truncate(self, step: int) -> None:
        """Forget points after ``step`` (a run resumed from an earlier checkpoint)."""
        for points in self.series.values():
            while points and points[-1][0] > step:
                points.pop()

    def trend(self, name: str = "loss", width: int = 12) -> list[float]:
        """The finite values of a series, downsampled evenly to ``width`` points: a sparkline's."""
        values = [v for _, v in self.series.get(name, []) if math.isfinite(v)]
        if len(values) <= width:
            return values
        return [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]

    def names(self) -> list[str]:
        return [name for name, points in self.series.items() if points]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (non-finite values as strings, like every saved number)."""
        return {
            "series": {
                name: [[step, value if math.isfinite(value) else str(value)] for step, value in points]
                for name, points in self.series.items()
            }
        }


def load(data: object) -> History:
    """A history from its saved form, every point checked. Raises :class:`RecordError`."""
    if not isinstance(data, dict) or not isinstance(data.get("series"), dict):
        raise RecordError("a history is an object with a series object")
    series = data["series"]
    if len(series) > MAX_SERIES:
        raise RecordError(f"a history holds at most {MAX_SERIES} series")
    loaded: dict[str, list[Point]] = {}
    for name, points in series.items():
        if not valid_name(name) or not isinstance(points, list) or len(points) > _MAX_SAVED_POINTS:
            raise RecordError(f"history series {str(name)[:80]!r} is not a list of at most {_MAX_SAVED_POINTS} points")
        loaded[name] = list(_points(name, points))
    return History(loaded)


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _points(name: str, points: Iterable[object]) -> Iterable[Point]:
    previous = -1
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and type(point[0]) is int):
            raise RecordError(f"history series {name[:80]!r} has a point that is not [step, value]")
        step, raw = point
        value = _NON_FINITE.get(raw.lower()) if isinstance(raw, str) else raw
        if not (0 <= step <= 2**63 - 1 and step > previous) or isinstance(value, bool):
            raise RecordError(f"history series {name[:80]!r} has steps out of order")
        if not isinstance(value, (int, float)) or (isinstance(value, int) and abs(value) > 2**63):
            raise RecordError(f"history series {name[:80]!r} has a value that is not a number")
        previous = step
        yield step, float(value)
