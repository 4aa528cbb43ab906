"""Escaping for everything a user or a library controls that ends up in the report.

The report is read twice: rendered (GitHub, the Hub, an IDE preview) and raw (diffs, editors,
terminals). So values are escaped just enough to be inert when rendered and still readable raw:
``2e-05``, ``0.03`` and ``Qwen2.5-0.5B`` stay as they are, while every character that can open
markup, HTML, an entity, math or a table cell boundary is backslash-escaped.

These are the jinja2 filters of the report template; templates never escape by hand.
"""

from __future__ import annotations

import functools
import html
import re
from urllib.parse import quote, urlsplit

# Characters that can start inline markup in CommonMark/GFM (emphasis, code, links, images, raw
# HTML, entities, strikethrough), GitHub math ($), end a table cell (|), or close a heading (a
# trailing "#" run). Other block-level markers (-, +, digits followed by '.') only matter at the
# start of a line, and cells and headings never start a line with user text.
_ESCAPE_RE = re.compile(r"([\\`*_\[\]<>|&~!$#])")
# Control characters (tabs included: they indent) and everything an editor treats as a line break
# besides "\n" (C1 controls such as NEL, and the Unicode line and paragraph separators).
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_BACKTICKS_RE = re.compile(r"`+")
_SPACE_RE = re.compile(r"\s")


def _clean(text: object) -> str:
    return _CONTROL_RE.sub(" ", str(text))


# Reports repeat the same labels, values and URLs in every run: escaping is cached.
_cached = functools.lru_cache(maxsize=16384, typed=True)


@_cached
def inline(text: object) -> str:
    """Escape text for a paragraph or a heading: one line, no markup, no HTML."""
    text = _NEWLINE_RE.sub(" ", _clean(text))
    return _ESCAPE_RE.sub(r"\\\1", text).strip()


@_cached
def cell(text: object) -> str:
    """Escape text for a table cell: like :func:`inline`, newlines become ``<br>``."""
    lines = _NEWLINE_RE.split(_clean(text))
    return "<br>".join(inline(line) for line in lines).strip() or " "


@_cached
def code(text: object, *, in_table: bool = False) -> str:
    """Render text as an inline code span that cannot close early.

    The fence is one backtick longer than the longest backtick run inside; a space pads content
    that starts or ends with a backtick. Inside a table, GFM splits cells on ``|`` before it parses
    code spans, so pipes are escaped there (GFM renders ``\\|`` inside a code span as ``|``).
    """
    text = _NEWLINE_RE.sub(" ", _clean(text))
    if in_table:
        text = text.replace("|", "\\|")
    runs = [len(m) for m in _BACKTICKS_RE.findall(text)]
    fence = "`" * (max(runs, default=0) + 1)
    # CommonMark strips one space from each end of a span unless it is all (ASCII) spaces.
    if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip(" ")):
        text = f" {text} "
    if not text:
        text = " "
    return f"{fence}{text}{fence}"


def code_block(text: object, info: str = "text") -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    body = str(text).replace("\r\n", "\n").replace("\r", "\n")
    runs = [len(m) for m in _BACKTICKS_RE.findall(body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{info}\n{body.rstrip(chr(10))}\n{fence}"


def safe_url(url: object) -> str | None:
    """Return ``url`` if it is an absolute http(s) URL with a host, else ``None``.

    Characters that would end a markdown link destination or an HTML attribute are
    percent-encoded, so the result can go both in ``[text](url)`` and, through :func:`attr`, in
    an ``src`` attribute.
    """
    return _safe_url(url) if isinstance(url, str) else None


@_cached
def _safe_url(url: str) -> str | None:
    if _CONTROL_RE.search(url) or _SPACE_RE.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        return quote(url, safe="/:?&=#%@+,;~!$*'-._[]")
    except UnicodeError:  # a lone surrogate cannot be a URL
        return None


def link(text: str, url: object) -> str:
    """``[text](url)`` for a safe URL, else the escaped text alone (never a broken or unsafe link)."""
    safe = safe_url(url)
    return f"[{inline(text)}]({safe})" if safe else inline(text)


def attr(url: object) -> str:
    """A safe URL escaped for an HTML attribute value (``&`` becomes ``&amp;``), or empty."""
    safe = safe_url(url)
    return html.escape(safe, quote=True) if safe else ""


_RELATIVE_PATH_RE = re.compile(r"[A-Za-z0-9_~%-][A-Za-z0-9._~%-]*(?:/[A-Za-z0-9_~%-][A-Za-z0-9._~%-]*)*")


def image(alt: str, path: object) -> str:
    """``![alt](path)`` for a relative path inside the report's folder (no ``..``, no scheme, no
    leading ``/``), else nothing: a report only shows the images it wrote itself."""
    if not isinstance(path, str) or not _RELATIVE_PATH_RE.fullmatch(path) or ".." in path.split("/"):
        return ""
    return f"![{inline(alt)}]({path})"


_STATE_PATH_RE = re.compile(r"[A-Za-z0-9._~%-]+(?:/[A-Za-z0-9._~%-]+)*")


def relative_link(text: str, path: object) -> str:
    """``[text](path)`` for a file the report wrote beside itself (a relative path inside its
    folder, hidden folders such as ``.trl-reporter`` allowed, never ``.`` or ``..``), else the
    text alone."""
    if (
        not isinstance(path, str)
        or not _STATE_PATH_RE.fullmatch(path)
        or any(part in (".", "..") for part in path.split("/"))
    ):
        return inline(text)
    return f"[{inline(text)}]({path})"
