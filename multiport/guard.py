"""The HTTP protocol of every port, with the connection limits of `LimitsSpec`.

uvicorn's httptools protocol, bounded where one client could otherwise hold a port (or
the whole process, which serves every port on one loop):

- a new connection past `connections` is answered 529 `overloaded_error` and closed;
- a new connection that sends nothing is closed after `header_seconds`, an idle one
  between requests after `keep_alive_seconds`;
- a request line and headers must arrive within `header_seconds` and `header_bytes`
  (408, 431), its body within `body_seconds` and `request_bytes` (408, 413), checked on
  `Content-Length` before any of the body is read;
- a client that leaves before its answer has begun cancels the request, so its upstream
  call ends at once (a stream already stops when its client leaves);
- a client that reads nothing of its answer for `send_seconds` is disconnected, which ends
  its request, its upstream call and what was buffered for it.

Each refusal is an Anthropic error body sent with `connection: close`.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, ClassVar

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits_spec import LimitsSpec

__all__ = ["CLIENT_GONE", "GuardedProtocol", "protocol_for"]

# The message of the cancellation that ends a request whose client has left.
CLIENT_GONE = "multiport: the client disconnected"

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    529: b"Overloaded",
}
_TYPES = {
    400: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    431: "invalid_request_error",
    529: "overloaded_error",
}
_encode = msgspec.json.Encoder().encode
_LINGER_SECONDS = 1.0


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer: an Anthropic error body, and the connection closed."""
    request_id = "req_" + secrets.token_hex(12)
    body = _encode(
        {
            "type": "error",
            "error": {"type": _TYPES[status], "message": message},
            "request_id": request_id,
        }
    )
    head = (
        f"HTTP/1.1 {status} {_REASONS[status].decode()}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the port's limits; see the module docstring."""

    limits: ClassVar[LimitsSpec] = LimitsSpec()
    port_name: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0
        self._body_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._pieces = 0  # header pieces (URL, headers) completed, counted in `_head_bytes`
        self._partial = 0  # bytes of a head still open across reads, not yet in a piece
        self._running: tuple[Any, asyncio.Task[None]] | None = None
        self._stalled: asyncio.TimerHandle | None = None

    # connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.connections:
            self._refuse(
                529,
                f"{self.port_name} has {self.limits.connections} open connections, its "
                "`limits.connections`; retry shortly, or close idle connections",
            )
            return
        # A new connection has `header_seconds` to send its request; one that sends
        # nothing is closed without an answer, as an idle one between requests.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.header_seconds, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unstall()
        if self._running is not None:
            cycle, task = self._running
            if not cycle.response_started:
                task.cancel(CLIENT_GONE)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_open, pieces = self._head_open, self._pieces
        super().data_received(data)
        if not (was_open and self._head_open) or self._refused:
            self._partial = 0
        elif pieces == self._pieces:
            # A head open across this whole read and no piece of it ended: httptools holds
            # the unfinished header, so bound what it may hold.
            self._partial += len(data)
        if self._head_open and self._head_bytes + self._partial > self.limits.header_bytes:
            self._refuse(431, self._head_message())

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        self._pieces += 1
        self._partial = 0
        self._head_bytes += size

    # a client that does not read

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.send_seconds, self._give_up)

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()

    def _unstall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _give_up(self) -> None:
        # The client read nothing for `send_seconds`: what it was sent is dropped, its
        # request (and upstream call) ends when the connection does.
        self._stalled = None
        self.transport.abort()

    # one request

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._partial = 0
        self._body_bytes = 0
        self._arm(self.limits.header_seconds, "its headers", "header_seconds")

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm()
        if self._head_bytes > self.limits.header_bytes:  # the whole head came in one read
            self._refuse(431, self._head_message())
            return
        declared = _content_length(self.headers)
        if declared is not None and declared > self.limits.request_bytes:
            self._refuse(413, self._body_message(declared))
            return  # no app runs; what the parser still reads is dropped
        super().on_headers_complete()
        self._arm(self.limits.body_seconds, "its body", "body_seconds")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.request_bytes:
            self._refuse(413, self._body_message(self._body_bytes))
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # As uvicorn's, keeping the task: a client that leaves cancels it.
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._running = (cycle, task)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal stopped the parser: it is answered already
            self._refuse(400, f"malformed HTTP request ({msg.rstrip('.')}); send valid HTTP/1.1")

    # refusals

    def _arm(self, seconds: float, what: str, field: str) -> None:
        self._disarm()
        message = (
            f"the request did not send {what} within {seconds:g} s (`limits.{field}` of "
            f"{self.port_name}); send the request at once"
        )
        self._deadline = self.loop.call_later(seconds, self._refuse, 408, message)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, message: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # an answer is on its way: nothing more can be said
            return
        self.pipeline.clear()
        if cycle is not None:
            cycle.keep_alive = False
        self.transport.write(refusal(status, message))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Closing now, with the client's bytes still unread, would reset the connection and
        # could destroy the answer before the client reads it: end our side, drop what
        # still comes (see `data_received`), and close a moment later.
        self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def _head_message(self) -> str:
        return (
            f"the request line and headers are over {self.limits.header_bytes} bytes "
            f"(`limits.header_bytes` of {self.port_name}); send fewer or shorter headers"
        )

    def _body_message(self, size: int) -> str:
        return (
            f"the request body of {size} bytes is over {self.limits.request_bytes} bytes "
            f"(`limits.request_bytes` of {self.port_name}); send a smaller request"
        )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the parser refuses it
    return None


def protocol_for(name: str, limits: LimitsSpec) -> type[GuardedProtocol]:
    """The protocol class of one port, its limits bound once."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "port_name": name})
