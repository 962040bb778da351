"""Incremental framing of an upstream byte stream into payloads: SSE or NDJSON."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .errors import UpstreamProtocolError
from .limits_spec import LimitsSpec

__all__ = ["MAX_PAYLOAD", "LineFramer", "too_long"]

# One stream event, by default (`limits.stream_line_bytes`); a longer one is an upstream
# fault, not a wait.
MAX_PAYLOAD = LimitsSpec().stream_line_bytes
_EOL = re.compile(rb"\r\n|\r|\n")


class LineFramer:
    """Incremental framing of an upstream byte stream into data payloads.

    `sse`: `data:` lines (with or without the space), CR, LF or CRLF line ends, `:`
    comments ignored, multi-line data joined, events dispatched on a blank line.
    `ndjson`: one JSON document per line. Bytes are split into lines before decoding, so
    a UTF-8 character split across reads is whole by then.

    What one payload may hold is bounded by `limit` bytes: the unfinished line and, for
    SSE, the `data:` lines of the event so far, each counted with its line end.
    """

    def __init__(self, framing: str, limit: int = MAX_PAYLOAD, host: str = "") -> None:
        self._sse = framing == "sse"
        self._limit = limit
        self._host = host
        self._tail: list[bytes] = []  # an unterminated line, in the pieces it came in
        self._tail_size = 0
        self._data: list[bytes] = []  # the `data:` lines of the event being read
        self._data_size = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Payloads completed by this chunk of bytes."""
        if b"\n" not in chunk and b"\r" not in chunk:
            self._hold(chunk)  # no line ends here: joined once one does, never re-scanned
            return
        buffer = b"".join((*self._tail, chunk)) if self._tail else chunk
        self._tail, self._tail_size = [], 0
        start = 0
        for end in _EOL.finditer(buffer):
            if end.end() == len(buffer) and end.group() == b"\r":
                break  # a CR at the end may be the first half of CRLF
            payload = self._line(buffer[start : end.start()])
            if payload is not None:
                yield payload
            start = end.end()
        if start < len(buffer):
            self._hold(buffer[start:])

    def close(self) -> Iterator[bytes]:
        """Whatever the last, unterminated line or event held."""
        rest = b"".join(self._tail)
        self._tail, self._tail_size = [], 0
        if rest:
            payload = self._line(rest.rstrip(b"\r"))
            if payload is not None:
                yield payload
        if self._sse and self._data:
            yield b"\n".join(self._data)
            self._data = []

    def _line(self, line: bytes) -> bytes | None:
        if not self._sse:
            return line if line.strip() else None
        if not line:
            if self._data:
                data, self._data, self._data_size = b"\n".join(self._data), [], 0
                return data
            return None
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)
            # +1: the newline that joins it, so empty `data:` lines count too.
            self._data_size += len(value) + 1
            if self._data_size > self._limit:
                raise too_long(self._host, self._limit)
        return None

    def _hold(self, piece: bytes) -> None:
        self._tail.append(piece)
        self._tail_size += len(piece)
        if self._tail_size + self._data_size > self._limit:
            raise too_long(self._host, self._limit)


def too_long(host: str, limit: int) -> UpstreamProtocolError:
    """The error of a stream line or event over `limits.stream_line_bytes`."""
    who = f"the upstream {host}" if host else "the upstream"
    return UpstreamProtocolError(
        f"{who} sent a stream event longer than {limit} bytes (limits.stream_line_bytes); "
        "raise it in the provider file if events this large are expected"
    )
