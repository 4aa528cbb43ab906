"""Capture of the Training Parameters: a curated list of ``(code, raw value)`` rows, then every other
argument the user changed from its default, as ``(name, raw value)``. Labels and formatting are
the template's.

Values are read from the arguments object directly, not from ``args.to_dict()``, because
``to_dict`` masks every field ending in ``_token`` and would turn SFTConfig's ``pad_token`` into
``<PAD_TOKEN>``. Credentials are left out by name (:func:`redact.is_secret_field`) and by shape
(the store scrubs token-shaped strings on the way to disk).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from . import detect
from .redact import is_secret_field

# Fields shown in the curated table (or derived into it), so not repeated among "changed".
_CURATED_FIELDS = {
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "optim",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "bf16",
    "fp16",
    "tf32",
    "seed",
    "max_length",
    "max_seq_length",
    "packing",
    "gradient_checkpointing",
    "activation_checkpointing",
    "use_cpu",
}
# Fields that are bookkeeping rather than choices about the training.
_NOISE_FIELDS = {
    "output_dir",
    "logging_dir",
    "run_name",
    "project",
    "report_to",
    "overwrite_output_dir",
    "dataloader_pin_memory",
    "do_eval",
}


def raw(value: Any) -> Any:
    """A value as JSON can keep it, unformatted: enums as their values, dataclasses and mappings as
    objects, tuples as lists, anything else JSON has no type for as its text."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return raw(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): raw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [raw(v) for v in value]
    return str(value)


def curated(args: Any, model: Any, trainer_class: str) -> list[tuple[str, Any]]:
    """The curated rows as ``(code, raw value)``, in the order a reader scans them; the template
    names and words each code."""
    versions = detect.library_versions()
    per_device = int(args.per_device_train_batch_size)
    accumulation = int(args.gradient_accumulation_steps)
    n_devices, device_kind = detect.devices(args)
    rows: list[tuple[str, Any]] = [
        ("trainer", {"class": trainer_class, "versions": [[k, versions[k]] for k in _STACK if k in versions]}),
        ("learning_rate", raw(args.learning_rate)),
        ("batch_size", per_device),
        ("gradient_accumulation", accumulation),
        ("effective_batch_size", {"per_device": per_device, "accumulation": accumulation, "devices": n_devices}),
    ]
    if getattr(args, "max_steps", -1) and args.max_steps > 0:
        rows.append(("max_steps", int(args.max_steps)))
    else:
        rows.append(("epochs", raw(args.num_train_epochs)))
    rows.append(("optimizer", raw(args.optim)))
    rows.append(("scheduler", {"type": raw(args.lr_scheduler_type), **_warmup(args)}))
    rows.append(("weight_decay", raw(args.weight_decay)))
    rows.append(("max_grad_norm", raw(args.max_grad_norm)))
    rows.append(("precision", {"kind": _precision(args), "tf32": bool(getattr(args, "tf32", False))}))
    rows.append(("seed", raw(args.seed)))
    for field in ("max_length", "max_seq_length"):
        if hasattr(args, field):
            rows.append(("max_length", raw(getattr(args, field))))
            break
    if hasattr(args, "packing"):
        rows.append(("packing", bool(args.packing)))
    checkpointing = getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", False))
    rows.append(("gradient_checkpointing", bool(checkpointing)))
    lora = _lora(model)
    if lora:
        rows.append(("lora", lora))
    parameters = _parameters(model)
    if parameters:
        rows.append(("parameters", parameters))
    rows.append(("devices", {"count": n_devices, "kind": device_kind}))
    return rows


_STACK = ("trl", "transformers", "torch")


def _warmup(args: Any) -> dict[str, Any]:
    steps = getattr(args, "warmup_steps", 0) or 0
    ratio = getattr(args, "warmup_ratio", None) or 0
    if ratio:
        return {"warmup_ratio": raw(ratio)}
    if steps and 0 < steps < 1:  # transformers 5 takes a ratio in warmup_steps too
        return {"warmup_ratio": raw(steps)}
    if steps:
        return {"warmup_steps": int(steps)}
    return {}


def _precision(args: Any) -> str:
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return "fp32"


def _lora(model: Any) -> dict[str, Any] | None:
    config = detect.peft_config(model)
    if config is None:
        return None
    found: dict[str, Any] = {"type": raw(getattr(config, "peft_type", "LoRA"))}
    for key, attr in (("r", "r"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        if getattr(config, attr, None) is not None:
            found[key] = raw(getattr(config, attr))
    targets = getattr(config, "target_modules", None)
    if targets:
        found["targets"] = targets if isinstance(targets, str) else sorted(str(t) for t in targets)
    return found


def _parameters(model: Any) -> dict[str, int] | None:
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return None
    total = trainable = 0
    for p in parameters():
        n = int(getattr(p, "ds_numel", 0) or p.numel())  # DeepSpeed ZeRO-3 keeps the real size in ds_numel
        total += n
        if p.requires_grad:
            trainable += n
    return {"total": total, "trainable": trainable} if total else None


def changed_arguments(args: Any) -> list[tuple[str, Any]]:
    """Arguments that differ from their field defaults, minus curated and secret fields.

    The defaults are read from the dataclass fields, never from a fresh instance: constructing a
    second ``TrainingArguments`` resets accelerate's global state under the running Trainer.
    Values that ``__post_init__`` merely normalises (``None`` to ``False``, ``"none"`` to ``[]``,
    ``"auto"`` resolved) do not count as changes.
    """
    if not dataclasses.is_dataclass(args):
        return []
    rows = []
    for field in dataclasses.fields(args):
        name = field.name
        if not field.init or name.startswith("_") or name in _CURATED_FIELDS or name in _NOISE_FIELDS:
            continue
        if is_secret_field(name):
            continue
        value = getattr(args, name, None)
        if not _same(value, _field_default(field)):
            rows.append((name, raw(value)))
    return rows


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _same(value: Any, default: Any) -> bool:
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and default is None:
        # A config object left at its own defaults (accelerator_config=None -> AcceleratorConfig()).
        try:
            return bool(value == type(value)())
        except TypeError:
            return False
    value, default = _normal(value), _normal(default)
    if value == default or default == "auto":
        return True
    # __post_init__ fills in "nothing" defaults: None -> False, "" -> [], "none" -> [].
    return _is_empty(value) and _is_empty(default)


def _is_empty(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value in ("", "none", "no")
        or (isinstance(value, (list, tuple, dict)) and not value)
    )


def _normal(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [v.value if isinstance(v, enum.Enum) else v for v in value]
    return value
