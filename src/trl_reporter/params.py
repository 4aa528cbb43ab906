"""The Training Parameters table: a curated list with human labels, then every other argument the
user changed from its default.

Values are read from the arguments object directly, not from ``args.to_dict()``, because
``to_dict`` masks every field ending in ``_token`` and would turn SFTConfig's ``pad_token`` into
``<PAD_TOKEN>``. Credentials are left out by name (:func:`redact.is_secret_field`) and by shape
(the store scrubs token-shaped strings on the way to disk).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
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


def format_value(value: Any) -> str:
    """A parameter value as people write it: ``2e-05``, ``linear``, ``yes``/``no``."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "None"
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value) or abs(value) >= 1e16:
            return repr(value)
        return f"{value:.1f}"
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=str, sort_keys=True)
        except (TypeError, ValueError):
            return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return format_value(dataclasses.asdict(value))
    return str(value)


def _count(n: int) -> str:
    return f"{n:,}"


def curated(args: Any, model: Any, trainer_class: str) -> list[tuple[str, str]]:
    """The curated rows, in the order a reader scans them."""
    rows: list[tuple[str, str | None]] = []
    versions = detect.library_versions()
    stack = ", ".join(f"{k} {versions[k]}" for k in ("trl", "transformers", "torch") if k in versions)
    rows.append(("Trainer", f"{trainer_class} ({stack})" if stack else trainer_class))
    rows.append(("Learning Rate", format_value(args.learning_rate)))
    per_device = int(args.per_device_train_batch_size)
    accumulation = int(args.gradient_accumulation_steps)
    n_devices, device_kind = detect.devices(args)
    rows.append(("Batch Size (per device)", str(per_device)))
    rows.append(("Gradient Accumulation Steps", str(accumulation)))
    device_word = "device" if n_devices == 1 else "devices"
    rows.append(
        (
            "Effective Batch Size",
            f"{per_device * accumulation * n_devices} ({per_device} × {accumulation} × {n_devices} {device_word})",
        )
    )
    if getattr(args, "max_steps", -1) and args.max_steps > 0:
        rows.append(("Max Steps", str(args.max_steps)))
    else:
        rows.append(("Epochs", format_value(args.num_train_epochs)))
    rows.append(("Optimizer", format_value(args.optim)))
    warmup = _warmup(args)
    scheduler = format_value(args.lr_scheduler_type)
    rows.append(("LR Scheduler", f"{scheduler}, {warmup}" if warmup else scheduler))
    rows.append(("Weight Decay", format_value(args.weight_decay)))
    rows.append(("Max Grad Norm", format_value(args.max_grad_norm)))
    rows.append(("Precision", _precision(args)))
    rows.append(("Seed", str(args.seed)))
    for field in ("max_length", "max_seq_length"):
        if hasattr(args, field):
            rows.append(("Max Sequence Length", format_value(getattr(args, field))))
            break
    if hasattr(args, "packing"):
        rows.append(("Packing", format_value(bool(args.packing))))
    checkpointing = getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", False))
    rows.append(("Gradient Checkpointing", format_value(bool(checkpointing))))
    lora = _lora(model)
    if lora:
        rows.append(("LoRA", lora))
    rows.append(("Parameters", _parameters(model)))
    rows.append(("Devices", f"{n_devices} × {device_kind}"))
    return [(label, value) for label, value in rows if value is not None and value]


def _warmup(args: Any) -> str | None:
    steps = getattr(args, "warmup_steps", 0) or 0
    ratio = getattr(args, "warmup_ratio", None) or 0
    if ratio:
        return f"warmup ratio {format_value(ratio)}"
    if steps and 0 < steps < 1:
        return f"warmup ratio {format_value(steps)}"
    if steps:
        return f"warmup {format_value(int(steps))} steps"
    return None


def _precision(args: Any) -> str:
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return "fp32" + (" (tf32 matmul)" if getattr(args, "tf32", False) else "")


def _lora(model: Any) -> str | None:
    config = detect.peft_config(model)
    if config is None:
        return None
    parts = []
    for label, attr in (("r", "r"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        if getattr(config, attr, None) is not None:
            parts.append(f"{label}={format_value(getattr(config, attr))}")
    targets = getattr(config, "target_modules", None)
    if targets:
        parts.append("targets " + (", ".join(sorted(targets)) if not isinstance(targets, str) else targets))
    peft_type = format_value(getattr(config, "peft_type", "LoRA"))
    return f"{peft_type}: " + ", ".join(parts) if parts else peft_type


def _parameters(model: Any) -> str | None:
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return None
    total = trainable = 0
    for p in parameters():
        n = int(getattr(p, "ds_numel", 0) or p.numel())  # DeepSpeed ZeRO-3 keeps the real size in ds_numel
        total += n
        if p.requires_grad:
            trainable += n
    if total == 0:
        return None
    if trainable == total:
        return f"{_count(total)} (all trainable)"
    return f"{_count(trainable)} trainable of {_count(total)} ({100 * trainable / total:.2g}%)"


def changed_arguments(args: Any) -> list[tuple[str, str]]:
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
            rows.append((name, format_value(value)))
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
