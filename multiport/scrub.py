"""The one secret scrubber: every error text that leaves for a client or a log passes here.

Secrets are what a provider file reads from the environment for its auth and headers, and
the key a client sent on this request (an upstream may echo it back under
`auth.passthrough`). Errors are made into bytes only by `error_body` and `error_event`,
which take a scrubber, so no path can forget it; the log filter covers log lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

__all__ = [
    "MIN_SECRET",
    "PLACEHOLDER_KEY",
    "Scrubber",
    "clean",
    "client_key",
    "error_body",
    "error_event",
    "excerpt",
    "guard_logs",
    "redact_url",
]

MIN_SECRET = 6  # shorter values are too likely to be ordinary words
# Messages are scrubbed first, then cut to MAX_MESSAGE; excerpts of upstream bytes are
# longer than that, so a secret cut at the excerpt's end is never in what is shown.
MAX_MESSAGE = 1000
_EXCERPT = 2 * MAX_MESSAGE
_REDACTED = "[redacted]"
_encode = msgspec.json.Encoder().encode


class Scrubber:
    """Replaces every known secret in a text; `with_secret` adds one for one request."""

    __slots__ = ("_bytes", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if len(s) >= MIN_SECRET}
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = tuple(sorted(unique, key=len, reverse=True))
        self._bytes = tuple((s.encode(), _REDACTED.encode()) for s in self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text

    def bytes(self, data: bytes) -> bytes:
        """The same for bytes that pass through unparsed (an Anthropic upstream's answer)."""
        for secret, redacted in self._bytes:
            if secret in data:
                data = data.replace(secret, redacted)
        return data

    def data(self, value: Any) -> Any:
        """The same for a document about to be shown (`/info`, `/v1/models`, `route`):
        every string in it, keys included."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def with_secret(self, secret: str | None) -> Scrubber:
        """This scrubber and one more secret (a client's own key, for one request)."""
        if not secret or len(secret) < MIN_SECRET or secret in self._secrets:
            return self
        return Scrubber((*self._secrets, secret))

    def filter(self) -> logging.Filter:
        """A logging filter that scrubs each record's final message."""
        scrub = self

        class _Filter(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                message = record.getMessage()
                clean = scrub(message)
                if clean != message:
                    record.msg, record.args = clean, None
                return True

        return _Filter()


def guard_logs(scrub: Scrubber) -> None:
    """Scrub every line that the process's log handlers write (multiport's and uvicorn's)."""
    log_filter = scrub.filter()
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")),
    ]
    log_filter.multiport = True  # type: ignore[attr-defined]
    for logger in loggers:
        for handler in logger.handlers:
            # A reload installs a new scrubber in place of the one before.
            for old in [f for f in handler.filters if getattr(f, "multiport", False)]:
                handler.removeFilter(old)
            handler.addFilter(log_filter)


def redact_url(url: str) -> str:
    """`url` without its user name, password, query or fragment, which may hold keys."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return _REDACTED
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


# The key `multiport env` and `multiport code` give a client that has none: no key at all.
PLACEHOLDER_KEY = "multiport"


def client_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `x-api-key`, or the token of `Authorization: Bearer`."""
    key = headers.get("x-api-key", "").strip()
    bearer = headers.get("authorization", "")
    if not key and bearer[:7].lower() == "bearer ":
        key = bearer[7:].strip()
    return key if key and key != PLACEHOLDER_KEY else None


def excerpt(raw: bytes) -> str:
    """The start of some upstream bytes, for an error message (scrubbed and cut later)."""
    return repr(raw[:_EXCERPT])


def clean(message: str, scrub: Scrubber) -> str:
    """`message` scrubbed, then cut to a length fit for a client or a log line."""
    clean = scrub(message)
    return clean if len(clean) <= MAX_MESSAGE else clean[:MAX_MESSAGE] + "…"


def error_body(error_type: str, message: str, request_id: str, scrub: Scrubber) -> bytes:
    """An Anthropic error body."""
    error = {"type": error_type, "message": clean(message, scrub)}
    return _encode({"type": "error", "error": error, "request_id": request_id})


def error_event(error_type: str, message: str, scrub: Scrubber) -> bytes:
    """An Anthropic SSE `error` event."""
    error = {"type": error_type, "message": clean(message, scrub)}
    data = _encode({"type": "error", "error": error})
    return b"event: error\ndata: " + data + b"\n\n"
