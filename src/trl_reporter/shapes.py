"""The curated parameter rows a template can word: each code's shape, checked before use.

A saved row is ``(code, raw value)``. Rows whose value does not have their code's shape (an older or
a hand-edited state file) are shown as their code and their value, never as an error.
"""

from __future__ import annotations

from typing import Any

from .records import MAX_INT

# The shape each curated parameter code must have for the template to word it; a row that does not
# fit (an older or a hand-edited state file) is shown as its code and its value, never an error.
_SCALAR = (str, int, float, bool, type(None))
_SHAPES: dict[str, Any] = {
    "trainer": {"class": str, "versions": [[str, str]]},
    "effective_batch_size": {"per_device": int, "accumulation": int, "devices": int},
    "scheduler": {"type": _SCALAR, "warmup_ratio?": _SCALAR, "warmup_steps?": _SCALAR},
    "precision": {"kind": str, "tf32": bool},
    "lora": {"type": _SCALAR, "r?": _SCALAR, "alpha?": _SCALAR, "dropout?": _SCALAR, "targets?": (str, [str])},
    "parameters": {"total": int, "trainable": int},
    "devices": {"count": int, "kind": str},
    "text": [str],
    **dict.fromkeys(
        (
            "learning_rate",
            "batch_size",
            "gradient_accumulation",
            "max_steps",
            "epochs",
            "optimizer",
            "weight_decay",
            "max_grad_norm",
            "seed",
            "max_length",
            "packing",
            "gradient_checkpointing",
        ),
        _SCALAR,
    ),
}


def _fits(value: Any, shape: Any) -> bool:
    """Whether ``value`` has ``shape``: a dict of keys (``"name?"`` for optional ones), a list of
    one shape, a tuple of alternatives, or a type; integers must fit 64 bits."""
    if isinstance(shape, dict):
        return (
            isinstance(value, dict)
            and all(k in shape or f"{k}?" in shape for k in value)
            and all(
                _fits(value[k.rstrip("?")], s) if k.rstrip("?") in value else k.endswith("?") for k, s in shape.items()
            )
        )
    if isinstance(shape, list):
        return isinstance(value, list) and all(_fits(v, shape[0]) for v in value)
    if isinstance(shape, tuple) and any(isinstance(s, (list, dict)) for s in shape):
        return any(_fits(value, s) for s in shape)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return False
    return isinstance(value, shape) and not (shape is int and isinstance(value, bool))


def _consistent(code: str, value: Any) -> bool:
    """What the template unpacks as (name, value) has two items, and a percentage has a base."""
    if code == "text":
        return len(value) == 2
    if code == "trainer":
        return all(len(pair) == 2 for pair in value["versions"])
    if code == "parameters":
        return bool(value["total"] > 0 and value["trainable"] >= 0)
    return True


def parameter(code: str, value: Any) -> dict[str, Any]:
    """A parameter row for the template: its code and value, plus what the words need computed."""
    if code not in _SHAPES or not _fits(value, _SHAPES[code]) or not _consistent(code, value):
        return {"code": "other", "label": code, "value": value}
    row: dict[str, Any] = {"code": code, "value": value}
    if code == "effective_batch_size":
        row["total"] = value["per_device"] * value["accumulation"] * value["devices"]
    if code == "parameters":
        row["percent"] = 100 * value["trainable"] / value["total"]
    return row
