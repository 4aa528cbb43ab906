"""Values made storable: what JSON can hold and trl-reporter reads back (see records)."""

from __future__ import annotations

import enum
import math
from typing import Any

# Larger integers are no step count, pid or size; JSON itself would keep them.
MAX_INT = 2**63 - 1


def to_real(value: object) -> float | int | None:
    """A metric as the Trainer gave it, made storable: ints stay ints while they fit 64 bits,
    larger ones become floats (infinite past a float's range), NaN and infinities stay floats
    (saved as strings). ``None`` for what is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        item = getattr(value, "item", None)  # numpy and torch scalars are numbers too
        if item is None:
            return None
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def is_finite_number(value: object) -> bool:
    """A real, finite number (not a bool, not NaN, not infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def json_safe(value: Any) -> Any:
    """Convert to what JSON can hold and trl-reporter reads back: NaN and infinities become
    strings, integers past 64 bits floats, enums their values, tuples lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        value = to_real(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
