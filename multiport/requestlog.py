"""One line per request to `/v1/messages` and `count_tokens`, and the metrics it feeds.

A `Record` is made by the route handler, filled on the way by the engine (the provider
that answered, its model, the upstream's status) and the router (retries, fallbacks), and
finished once: when the answer is made, the error answered, or the stream over. Finishing
writes the line (logger `multiport.requests`, INFO) and moves the metrics (`metrics.py`).

Tokens are read from what the client receives (the answer's `usage`, a stream's
`message_start` and `message_delta`), so every path (translated, passed through, replayed,
routed) counts the same way. The line holds names, numbers and outcomes: never prompt
text or keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import metrics

__all__ = ["CLIENT_GONE", "Record", "new_request_id", "request_id_for"]

log = logging.getLogger("multiport.requests")

CLIENT_GONE = "client_gone"
_ID = re.compile(r"[!-~]{1,128}")  # printable ASCII, no spaces: safe in a header and a log
_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
        CLIENT_GONE,
    }
)
_MODEL_CHARS = 200


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id_for(given: str | None) -> str:
    """The client's `x-request-id` when it is printable ASCII of at most 128 characters,
    else a new id."""
    if given and _ID.fullmatch(given):
        return given
    return new_request_id()


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Message(msgspec.Struct):
    usage: _Usage | None = None


class _Start(msgspec.Struct):
    message: _Message | None = None


class _ErrorDetail(msgspec.Struct):
    type: str = "api_error"


class _ErrorEvent(msgspec.Struct):
    error: _ErrorDetail | None = None


_answer = msgspec.json.Decoder(_Message).decode
_start = msgspec.json.Decoder(_Start).decode
_delta = msgspec.json.Decoder(_Message).decode
_error = msgspec.json.Decoder(_ErrorEvent).decode
_START = b"event: message_start\ndata: "
_DELTA = b"event: message_delta\ndata: "
_ERROR = b"event: error\ndata: "


def _data(frame: bytes, marker: bytes) -> bytes | None:
    """The data line of the event `marker` names in `frame`, or None."""
    at = frame.find(marker)
    if at == -1:
        return None
    start = at + len(marker)
    end = frame.find(b"\n", start)
    return frame[start:end] if end != -1 else frame[start:]


def _error_type(value: str) -> str:
    """An error type fit for a metric label: one of Anthropic's, else `api_error`."""
    return value if value in _ERROR_TYPES else "api_error"


def _shown(text: str) -> str:
    """A client-given name made fit for one log field: printable ASCII, bounded."""
    if text.isascii() and text.isprintable() and len(text) <= _MODEL_CHARS:
        return text
    return "".join(c if " " <= c <= "~" else "?" for c in text[:_MODEL_CHARS])


@dataclass(slots=True)
class Record:
    """What one request did; see the module docstring."""

    port: str
    endpoint: str
    request_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    provider: str = ""
    target: str = ""
    stream: bool = False
    upstream_status: int = 0
    retries: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_token: float | None = None
    outcome: str = ""  # set when a stream carries an error event
    finished: bool = False

    @property
    def headers(self) -> dict[str, str]:
        """The id on an answer, under both names clients read."""
        return {"request-id": self.request_id, "x-request-id": self.request_id}

    def __enter__(self) -> Record:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """A client that leaves inside `with record:` ends the record as gone."""
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            self.finish(499, CLIENT_GONE)  # nginx's status for a client that closed

    def answered(self, body: bytes) -> None:
        """A complete answer made: its usage read, the record finished."""
        try:
            usage = _answer(body).usage
        except (msgspec.DecodeError, msgspec.ValidationError):
            usage = None
        if usage is not None:
            self.input_tokens = usage.input_tokens or 0
            self.output_tokens = usage.output_tokens or 0
        self.finish(200)

    async def watch(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A stream's frames; the record is finished when it ends, however it ends."""
        self.stream = True
        ended = False
        try:
            async for frame in frames:
                if self.first_token is None and b"event: content_block" in frame:
                    self.first_token = time.perf_counter() - self.started
                if b"event: message_" in frame or b"event: error" in frame:
                    self._read(frame)
                yield frame
            ended = True
        finally:
            self.finish(200, "" if ended else CLIENT_GONE)
            close = getattr(frames, "aclose", None)
            if not ended and close is not None:
                await close()  # the upstream call ends with the client's stream

    def _read(self, frame: bytes) -> None:
        """Usage and errors from the events of one frame."""
        try:
            data = _data(frame, _START)
            if data is not None and (start := _start(data).message) and start.usage:
                self.input_tokens = start.usage.input_tokens or self.input_tokens
            data = _data(frame, _DELTA)
            if data is not None and (usage := _delta(data).usage):
                self.input_tokens = usage.input_tokens or self.input_tokens
                self.output_tokens = usage.output_tokens or self.output_tokens
            data = _data(frame, _ERROR)
            if data is not None:
                error = _error(data).error
                self.outcome = _error_type(error.type if error else "api_error")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # a malformed event: the client sees it as it is; nothing to count

    def finish(self, status: int, error: str = "") -> None:
        """Write the line and move the metrics, once."""
        if self.finished:
            return
        self.finished = True
        latency = time.perf_counter() - self.started
        if error:
            self.outcome = _error_type(error)
        if self.first_token is None and not self.stream and status < 400:
            self.first_token = latency  # a complete answer: its first token came with it
        metrics.observe(self, status, latency)
        if log.isEnabledFor(logging.INFO):
            fields = self.fields(status, latency)
            log.info("%s", _logfmt(fields), extra={"request": fields})

    def fields(self, status: int, latency: float) -> dict[str, Any]:
        """The line's fields, as JSON shows them (text shows the same, `key=value`)."""
        first = self.first_token
        return {
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "port": self.port,
            "provider": self.provider or None,
            "model": _shown(self.model) if self.model else None,
            "target": self.target or None,
            "stream": self.stream,
            "status": status,
            "outcome": self.outcome or "ok",
            "latency_ms": round(latency * 1000, 1),
            "ttft_ms": round(first * 1000, 1) if first is not None else None,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "upstream_status": self.upstream_status or None,
        }


def _logfmt(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            text = "-"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
            if not text or " " in text or '"' in text or "=" in text:
                text = msgspec.json.encode(text).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)
