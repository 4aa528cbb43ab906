"""Static charts of a run's curves, as plain data for ``templates/chart.svg.j2``.

Everything here is arithmetic: scales, "nice" ticks, and SVG path strings with fixed precision, so
the same data always gives the same bytes. A non-finite value (NaN, infinity) breaks its line: it
is drawn as a gap. The template owns the look (colours, fonts, the card behind the chart that keeps
it legible on GitHub's light and dark themes); no word or number it shows comes from anywhere but
here and the run's data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import metrics
from .history import Point, downsample

WIDTH = 720
_PLOT_LEFT, _PLOT_RIGHT, _TOP = 64, 16, 58
_PANEL_HEIGHT, _SMALL_PANEL_HEIGHT, _PANEL_GAP = 240, 140, 44
_LEGEND_ROW, _LEGEND_COLUMN = 20, 230
# Points per line: enough for a smooth curve, few enough for a small file.
_RUN_POINTS = 200
_OVERLAY_POINTS = 120
# The overlay shows the latest runs; a thousand lines would be a grey smear.
MAX_OVERLAY_RUNS = 20
# Other evaluation metrics drawn below the loss, each in a small panel of its own.
_MAX_EXTRA_PANELS = 2


def nice_ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> tuple[list[float], int]:
    """Round tick values covering ``[low, high]`` (steps of 1, 2, 2.5 or 5 times a power of ten;
    whole numbers only if ``whole``), and the decimals their labels need."""
    # Ranges no chart needs (beyond ±1e300, narrower than 1e-300) are drawn as if they were those.
    low, high = max(min(low, 1e300), -1e300), max(min(high, 1e300), -1e300)
    if not high - low > max(abs(low), abs(high)) * 1e-12 + 1e-300:
        pad = abs(low) * 0.05 or (1 if whole else 0.5)
        low, high = low - pad, high + pad
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    choices = [m * power for m in (1, 2, 2.5, 5, 10)]
    if whole:
        choices = [c for c in choices if c >= 1 and c == int(c)] or [1]
    step = next((c for c in choices if c >= raw), choices[-1])
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(first, last + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / power, 3) == 2.5 else 0)
    return ticks, decimals


def _label(value: float, decimals: int) -> str:
    if value != 0 and (abs(value) >= 1e6 or decimals > 6):
        return f"{value:.3g}"
    text = f"{value:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


class _Scale:
    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low, self.span = low, (high - low) or 1.0
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / self.span * (self.end - self.start)


def _finite(points: Sequence[Point]) -> bool:
    return any(math.isfinite(v) for _, v in points)


def _path(points: Sequence[Point], x: _Scale, y: _Scale) -> str:
    """``M x y L x y ...``; a non-finite value ends the line, the next finite one starts anew."""
    parts: list[str] = []
    drawing = False
    for step, value in points:
        if not math.isfinite(value):
            drawing = False
            continue
        parts.append(f"{'L' if drawing else 'M'}{x(step):.1f} {y(value):.1f}")
        drawing = True
    return " ".join(parts)


def _panel(
    series: Sequence[tuple[str, Sequence[Point]]], top: float, height: float, title: str, style: list[int]
) -> dict[str, Any]:
    """One plot: axes from the finite values of ``series``, ticks, and one line per series."""
    finite = [(s, v) for _, points in series for s, v in points if math.isfinite(v)]
    steps = [s for _, points in series for s, _ in points]
    left, right, bottom = _PLOT_LEFT, WIDTH - _PLOT_RIGHT, top + height
    xticks, _ = nice_ticks(min(steps, default=0), max(steps, default=1), 6, whole=True)
    yticks, decimals = nice_ticks(min((v for _, v in finite), default=0), max((v for _, v in finite), default=1), 4)
    x = _Scale(xticks[0], xticks[-1], left, right)
    y = _Scale(yticks[0], yticks[-1], bottom, top)
    lines = []
    for (name, points), index in zip(series, style):
        markers = [[round(x(s), 1), round(y(v), 1)] for s, v in points if math.isfinite(v)]
        lines.append(
            {
                "name": name,
                "style": index,
                "d": _path(points, x, y),
                "markers": markers if len(markers) <= 30 else [],
            }
        )
    return {
        "title": title,
        "top": top,
        "bottom": bottom,
        "left": left,
        "right": right,
        "xticks": [{"x": round(x(t), 1), "label": _label(t, 0)} for t in xticks],
        "yticks": [{"y": round(y(t), 1), "label": _label(t, decimals)} for t in yticks],
        "lines": lines,
        "empty": not finite,
    }


def _legend(names: list[tuple[str, int]], top: float) -> tuple[list[dict[str, Any]], float]:
    per_row = max(1, (WIDTH - _PLOT_LEFT - _PLOT_RIGHT) // _LEGEND_COLUMN)
    entries = [
        {
            "name": name if len(name) <= 32 else name[:31] + "…",
            "style": style,
            "x": _PLOT_LEFT + (i % per_row) * _LEGEND_COLUMN,
            "y": top + (i // per_row) * _LEGEND_ROW,
        }
        for i, (name, style) in enumerate(names)
    ]
    rows = -(-len(names) // per_row)
    return entries, top + rows * _LEGEND_ROW


def _chart(title: str, panels: list[dict[str, Any]], legend: list[tuple[str, int]], bottom: float) -> dict[str, Any]:
    entries, end = _legend(legend, bottom + 34)
    return {"title": title, "width": WIDTH, "height": round(end + 6), "panels": panels, "legend": entries}


def run_chart(title: str, series: dict[str, list[Point]]) -> dict[str, Any] | None:
    """A run's chart: training and evaluation loss against step, then up to two other evaluation
    metrics with a known direction (token accuracy, say) in small panels of their own."""
    loss = [
        (label, downsample(series[name], _RUN_POINTS))
        for name, label in (("loss", "training loss"), ("eval_loss", "eval loss"))
        if series.get(name)
    ]
    # A curve with no finite value has nothing to draw: not in the panel, not in the legend.
    loss = [(label, points) for label, points in loss if _finite(points)] or loss[:1]
    extra = [
        name
        for name in series
        if name.startswith("eval_") and name != "eval_loss" and series[name] and metrics.direction(name)[0]
    ][:_MAX_EXTRA_PANELS]
    if not loss and not extra:
        return None
    panels, top, legend, style = [], float(_TOP), [], 0
    if loss:
        panels.append(_panel(loss, top, _PANEL_HEIGHT, "loss", list(range(len(loss)))))
        legend += [(label, i) for i, (label, _) in enumerate(loss)]
        top += _PANEL_HEIGHT + _PANEL_GAP
        style = len(loss)
    for name in extra:
        panels.append(_panel([(name, downsample(series[name], _RUN_POINTS))], top, _SMALL_PANEL_HEIGHT, name, [style]))
        legend.append((name, style))
        top += _SMALL_PANEL_HEIGHT + _PANEL_GAP
        style += 1
    return _chart(title, panels, legend, top - _PANEL_GAP)


def overlay_chart(title: str, runs: list[tuple[str, list[Point]]]) -> dict[str, Any] | None:
    """Every run's training loss on one plot (the latest :data:`MAX_OVERLAY_RUNS`), with a legend."""
    shown = [(name, downsample(points, _OVERLAY_POINTS)) for name, points in runs if points][-MAX_OVERLAY_RUNS:]
    if not shown:
        return None
    panel = _panel(shown, float(_TOP), _PANEL_HEIGHT, "training loss", list(range(len(shown))))
    return _chart(title, [panel], [(name, i) for i, (name, _) in enumerate(shown)], _TOP + _PANEL_HEIGHT)
