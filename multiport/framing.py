"""Incremental framing of an upstream byte stream into payloads: SSE or NDJSON."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["LineFramer"]


class LineFramer:
    """Incremental framing of an upstream byte stream into data payloads.

    `sse`: `data:` lines (with or without the space), CR, LF or CRLF line ends, `:`
    comments ignored, multi-line data joined, events dispatched on a blank line.
    `ndjson`: one JSON document per line. Bytes are split into lines before decoding, so
    a UTF-8 character split across reads is whole by then.
    """

    def __init__(self, framing: str) -> None:
        self._sse = framing == "sse"
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Payloads completed by this chunk of bytes."""
        buffer = self._buffer + chunk
        start = 0
        size = len(buffer)
        while True:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start)
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == size:
                    break  # a CR at the end may be the first half of CRLF
                end, nxt = cr, cr + (2 if buffer[cr + 1 : cr + 2] == b"\n" else 1)
            elif lf != -1:
                end, nxt = lf, lf + 1
            else:
                break
            payload = self._line(buffer[start:end])
            if payload is not None:
                yield payload
            start = nxt
        self._buffer = buffer[start:]

    def close(self) -> Iterator[bytes]:
        """Whatever the last, unterminated line or event held."""
        rest, self._buffer = self._buffer, b""
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
                data, self._data = b"\n".join(self._data), []
                return data
            return None
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)
        return None
