"""Values as people read them: times, durations, scores, counts, parameter values, sparklines.

Plain text, no markup: the report template's filters escape it where it goes, and the CLI prints it.
"""

from __future__ import annotations

import datetime as dt
import json
import math


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


def score(value: float | str | None) -> str:
    """A score for people: integers as they are; floats to four significant digits, trailing zeros
    kept (``3.780``), as a whole number from 10,000 and in scientific notation below 0.0001; NaN
    and infinities as themselves; nothing as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0.000"
    if abs(value) >= 9999.5:
        return f"{value:,.0f}"
    if abs(value) < 1e-4:
        return f"{value:.3e}"
    return f"{value:#.4g}".rstrip(".")


_SPARKS = "▁▂▃▄▅▆▇█"


def spark(values: list[float]) -> str:
    """A unicode sparkline: ``▇▅▃▂▂▁``."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(_SPARKS[min(7, int((v - low) / span * 7 + 0.5))] for v in finite)


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
