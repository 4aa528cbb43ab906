"""Secret scrubbing: the one place that keeps tokens and passwords out of every written file.

The store calls :func:`scrub` on every string it serialises, so the report, the state files and the
log messages built from them never carry a Hugging Face token or a password embedded in a URL.
Harmless look-alikes (``max_new_tokens``, ``pad_token``, git hashes) are left alone: only values
shaped like real credentials are replaced.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"

# Hugging Face user tokens are "hf_" + 34 letters and digits, organisation API tokens "api_org_" +
# 34. Requiring 30 keeps identifiers such as hf_transfer, hf_argparser or a run named hf_baseline.
# No word boundary on either side: "_" is a word character, so "\b" let "eval_hf_…" and "hf_…_v2"
# through; a token glued to anything is still a token.
_TOKEN_RE = re.compile(r"(?:hf|api_org)_[A-Za-z0-9]{30,}")
# scheme://user:password@host -> scheme://user:***@host. The password runs to the last "@" before
# any white space, so sloppy URLs with "@" or "/" in the password are hidden whole (the price: a
# rare "host:port/path@x" URL loses its port and path too). The scheme may follow anything that
# cannot be part of a scheme ("eval_https://…" included).
_URL_PASSWORD_RE = re.compile(
    r"(?P<head>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<pw>\S+)(?=@[^\s@]*)"
)
# Field names whose values are secrets whatever they look like.
_SECRET_NAME_RE = re.compile(r"(^|_)(hub_token|token|password|passwd|secret|api_key|apikey)$", re.IGNORECASE)
# Field names ending in "_token" that name a vocabulary token, not a credential.
_HARMLESS_TOKEN_FIELDS = frozenset(
    {"pad_token", "eos_token", "bos_token", "unk_token", "sep_token", "cls_token", "mask_token", "chat_template_token"}
)


def scrub_text(text: str) -> str:
    """Return ``text`` with token-shaped strings and URL passwords replaced by ``***``."""
    if "_" not in text and "://" not in text:
        return text
    text = _TOKEN_RE.sub(REDACTED, text)
    return _URL_PASSWORD_RE.sub(lambda m: m.group("head") + REDACTED, text)


def clean_text(text: str) -> str:
    """``text`` made safe to keep: secrets redacted, and lone surrogates (what Python makes of bytes
    that are not UTF-8, such as a file name from another system) turned into ``\\udcff``
    escapes, so that every file it reaches can be written as UTF-8 and read back unchanged."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return scrub_text(text)


def is_secret_field(name: str) -> bool:
    """True for argument names that hold credentials (``hub_token``), false for ``pad_token``."""
    lowered = name.lower()
    if lowered in _HARMLESS_TOKEN_FIELDS or lowered.endswith("_tokens"):
        return False
    return bool(_SECRET_NAME_RE.search(lowered))


def scrub(value: Any) -> Any:
    """Clean every string inside a JSON-like value (dicts, lists, strings, numbers) with
    :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): (REDACTED if is_secret_field(str(k)) and v else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
