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
# At most 256 characters are searched for that "@", so that a long line of URLs without one
# costs linear time.
_URL_PASSWORD_RE = re.compile(
    r"(?P<head>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<pw>\S{1,256})(?=@[^\s@]*)"
)
# scheme://<a long user name>@host: a token put where the user name goes (https://ghp_…@github.com).
_URL_TOKEN_USER_RE = re.compile(r"(?P<head>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s:/@]{20,256}(?=@)")
# Field names whose values are secrets whatever they look like.
_SECRET_NAME_RE = re.compile(
    r"(^|_)(hub_token|token|password|passwd|api_key|apikey|access_key|private_key|auth_key|openai_key|wandb_key"
    r"|credential|credentials)$|(^|_)secret(_|$)",
    re.IGNORECASE,
)
# Field names ending in "_token" that name a vocabulary token, not a credential.
_HARMLESS_TOKEN_FIELD_RE = re.compile(
    r"(^|_)(pad|eos|bos|unk|sep|cls|mask|chat_template|image|video|audio|vision_start|vision_end|boi|eoi|think)_token$"
)
# In text (a command line, a patch): NAME=value (no spaces: an environment assignment, --name=value),
# or NAME followed by "=" or ":" and a quoted literal (code, JSON: HF_TOKEN = "…", "password": "…",
# os.environ["HF_TOKEN"] = "…"), or a YAML line "name: value". A name starts where no name
# character precedes it and is at most 100 characters long, so that any input costs linear time.
_ASSIGNMENT_RE = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]{1,100})"
    r"(?:=(?P<bare>[^\s\"',;)\]}]+)"
    r"|(?P<sep>[\"']?\]?[ \t]{0,8}[=:][ \t]{0,8})(?P<quote>[\"'])(?P<literal>[^\"'\n]{1,4096})(?P=quote)"
    r"|(?P<yaml>:[ \t]{1,8})(?P<plain>[^\s\"'#]{1,4096})[ \t]*$)",
    re.M,
)


def scrub_text(text: str) -> str:
    """Return ``text`` with token-shaped strings and URL passwords replaced by ``***``."""
    if "_" not in text and "://" not in text:
        return text
    text = _TOKEN_RE.sub(REDACTED, text)
    text = _URL_TOKEN_USER_RE.sub(lambda m: m.group("head") + REDACTED, text)
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
    if _HARMLESS_TOKEN_FIELD_RE.search(lowered) or lowered.endswith("_tokens"):
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


def redact_text(text: str) -> str:
    """Secrets out of free text (a command line, a patch): what :func:`clean_text` removes, and
    the value given to any name that says it is a secret (``HF_TOKEN=…``, ``--api-key=…``,
    ``HF_TOKEN = "…"``, ``"password": "…"``, ``hub_token: …``)."""

    def hide(m: re.Match[str]) -> str:
        if not _secret_word(m.group("name")):
            return m.group(0)
        if m.group("bare") is not None:
            return f"{m.group('name')}={REDACTED}"
        if m.group("literal") is not None:
            return f"{m.group('name')}{m.group('sep')}{m.group('quote')}{REDACTED}{m.group('quote')}"
        return f"{m.group('name')}{m.group('yaml')}{REDACTED}"

    return clean_text(_ASSIGNMENT_RE.sub(hide, text))


def redact_words(words: list[str]) -> list[str]:
    """A command line's words, redacted: each as :func:`redact_text`, and the word after a flag
    that names a secret (``--hub_token X``), unless that word is another flag."""
    shown: list[str] = []
    hide_next = False
    for word in words:
        if hide_next and not word.startswith("--"):
            shown.append(REDACTED)
            hide_next = False
            continue
        hide_next = word.startswith("-") and "=" not in word and _secret_word(word)
        shown.append(redact_text(word))
    return shown


def _secret_word(name: str) -> bool:
    """``HF_TOKEN``, ``--hub-token``, ``WANDB_API_KEY``: yes; ``pad_token``, ``max_new_tokens``: no."""
    return is_secret_field(name.lstrip("-").replace("-", "_").replace(".", "_"))
