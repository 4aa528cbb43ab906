"""Typed, checked reads of one saved JSON object: the field readers :mod:`~trl_reporter.schema`
builds records with. Every value read from a saved file passes one of these checks."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import RecordError
from .records import MAX_INT

MAX_TIMESTAMP = 253402300799.0
MAX_TEXT = 1_000_000
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf, "-infinity": -math.inf}
E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


def _valid_unicode(text: str) -> bool:
    """Whether ``text`` has no lone surrogates (JSON's "\\ud800" escapes allow them; UTF-8 cannot
    hold them, and trl-reporter writes them as "\\udcff" text instead)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_real(value: object) -> float | int | None:
    """A number as saved: an int or float, or "nan"/"inf"/"-inf" (JSON has no such numbers).
    ``None`` for anything else, and for an integer too large to be a float."""
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        return None
    return value


class Fields:
    """Typed, checked reads of one saved JSON object."""

    def __init__(self, data: dict[str, Any], where: str = "") -> None:
        self.data = data
        self.where = where

    def bad(self, key: str, expected: str) -> RecordError:
        return RecordError(f"{self.where}{key} is not {expected}: {repr(self.data.get(key))[:80]}")

    def text(self, key: str) -> str:
        value = self.opt_text(key)
        if value is None:
            raise RecordError(f"{self.where}{key} is missing")
        return value

    # These run for every field of every saved file: exact type checks first, the rest only for
    # what passes them.
    def opt_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not str or len(value) > MAX_TEXT or not _valid_unicode(value):
            raise self.bad(key, "a string of valid Unicode")
        return value

    def opt_count(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value <= MAX_INT:
            raise self.bad(key, "a whole number from 0")
        return value

    def opt_real(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        number = read_real(value)
        if number is None:
            raise self.bad(key, "a number")
        return float(number)

    def moment(self, key: str) -> float:
        value = self.opt_moment(key)
        if value is None:
            raise RecordError(f"{self.where}{key} is missing")
        return value

    def opt_moment(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) not in (int, float) or not 0 <= value <= MAX_TIMESTAMP:
            raise self.bad(key, "a time (seconds since 1970, before the year 10000)")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.bad(key, "true or false")
        return value

    def code(self, key: str, kind: type[E]) -> E | None:
        value = self.opt_text(key)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise self.bad(key, f"one of {', '.join(repr(m.value) for m in kind)}") from None

    def sub(self, key: str, read: Callable[[Fields], T]) -> T | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.bad(key, "an object")
        return read(Fields(value, f"{self.where}{key}."))

    def pairs(self, key: str) -> list[tuple[str, Any]]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and len(p[0]) <= MAX_TEXT for p in value
        ):
            raise self.bad(key, "a list of [name, value] pairs")
        return [(name, item) for name, item in value]

    def names(self, key: str, limit: int = 16) -> list[str]:
        value = self.data.get(key) or []
        if (
            not isinstance(value, list)
            or len(value) > limit
            or not all(type(v) is str and 0 < len(v) <= 200 and _valid_unicode(v) for v in value)
        ):
            raise self.bad(key, f"a list of at most {limit} names")
        return list(value)

    def texts(self, key: str, limit: int) -> list[str]:
        value = self.data.get(key) or []
        if (
            not isinstance(value, list)
            or len(value) > limit
            or not all(type(v) is str and len(v) <= MAX_TEXT and _valid_unicode(v) for v in value)
        ):
            raise self.bad(key, f"a list of at most {limit} strings")
        return list(value)

    def reals(self, key: str, limit: int = 64) -> list[float]:
        value = self.data.get(key) or []
        numbers = [read_real(v) for v in value] if isinstance(value, list) and len(value) <= limit else None
        if numbers is None or any(n is None or not math.isfinite(n) for n in numbers):
            raise self.bad(key, f"a list of at most {limit} finite numbers")
        return [float(n) for n in numbers if n is not None]

    def rows(self, key: str, read: Callable[[Fields], T]) -> list[T]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise self.bad(key, "a list of objects")
        return [read(Fields(r, f"{self.where}{key}[].")) for r in value]
