"""An upstream answer as the gateway reads it: within its time limits, decoded in bounded steps.

`Watchdog` holds the time limits of one upstream call: until the answer's headers, between
two reads of its body, and for the whole call. It keeps one timer at a time and moves it
lazily, so a read costs a clock reading and a few attribute stores, however many chunks a
stream has. `UpstreamBody` is the answer's body: read under the watchdog, counted as
received, and decompressed in steps of at most `PIECE` bytes, so a compression bomb is
met piece by piece, never inflated whole.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

from .errors import UpstreamProtocolError, UpstreamTimeout
from .limits_spec import TimeoutsSpec

__all__ = [
    "ACCEPT_ENCODING",
    "FIRST_BYTE",
    "PIECE",
    "READ",
    "Timing",
    "UpstreamBody",
    "Watchdog",
    "bounded",
    "too_large",
]

ACCEPT_ENCODING = "gzip, deflate"  # what `UpstreamBody` decodes, and so what the gateway asks for
PIECE = 64 << 10  # the most one decompression step produces
# Timers may fire a little early (uvloop counts whole milliseconds); a check that late by
# less than this counts as due, so an early timer does not re-arm itself in a loop.
_SLACK = 0.002
# What a wait is bounded by: an index into `Timing.names`.
FIRST_BYTE, READ, TOTAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Timing:
    """The time limits of one kind of upstream call, each with the setting that holds it."""

    first_byte: float
    read: float
    total: float
    names: tuple[str, str, str] = ("timeouts.first_byte", "timeouts.read", "timeouts.total")

    @classmethod
    def of(cls, spec: TimeoutsSpec) -> Timing:
        return cls(spec.first_byte, spec.read, spec.total)


class Watchdog:
    """Cancels the task awaiting an upstream when it waits too long or the call's time is up.

    Made when the call starts and closed when it ends (`with`); `arm` before each await
    on the upstream, `disarm` after it; a CancelledError in between is turned into the
    timeout by `timeout_error`.
    """

    __slots__ = (
        "_deadline",
        "_expired",
        "_handle",
        "_idle",
        "_idles",
        "_loop",
        "_since",
        "_stage",
        "_task",
        "host",
        "timing",
    )

    def __init__(self, timing: Timing, host: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.timing = timing
        self.host = host
        self._idles = (timing.first_byte, timing.read)
        self._deadline = self._loop.time() + timing.total
        self._task: asyncio.Task[object] | None = None
        self._since = 0.0
        self._idle = 0.0
        self._stage = FIRST_BYTE
        self._handle: asyncio.TimerHandle | None = None
        self._expired: int | None = None

    def arm(self, stage: int) -> None:
        """An await on the upstream begins: for the headers (`FIRST_BYTE`) or a read (`READ`)."""
        now = self._loop.time()
        if now >= self._deadline:
            # Data that is already buffered never suspends the reader, so no timer fires.
            self._expired = TOTAL
            raise self._error()
        idle = self._idles[stage]
        self._task = asyncio.current_task()
        self._since, self._idle, self._stage = now, idle, stage
        due = min(now + idle, self._deadline)
        handle = self._handle
        if handle is None or handle.when() > due + _SLACK:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(due, self._check)

    def disarm(self) -> None:
        """The await on the upstream is over."""
        self._task = None

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """The call is over: its timer goes."""
        self._task = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def timeout_error(self) -> UpstreamTimeout | None:
        """After a CancelledError while armed: the timeout that caused it, or None when the
        task was cancelled from outside as well (then the cancellation goes on)."""
        task = self._task
        if self._expired is None or task is None or task.uncancel() > 0:
            return None
        return self._error()

    def _check(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # not waiting now: the next `arm` sets the timer again
        now = self._loop.time() + _SLACK
        if now >= self._deadline:
            self._expired = TOTAL
        elif now >= self._since + self._idle:
            self._expired = self._stage
        else:
            self._handle = self._loop.call_at(
                min(self._since + self._idle, self._deadline), self._check
            )
            return
        task.cancel()

    def _error(self) -> UpstreamTimeout:
        timing, stage = self.timing, self._expired or FIRST_BYTE
        if stage == TOTAL:
            text = f"exceeded the total time of {timing.total:g} s"
        elif stage == READ:
            text = f"sent nothing for {timing.read:g} s in the middle of its answer"
        else:
            text = f"sent no answer within {timing.first_byte:g} s"
        return UpstreamTimeout(f"the upstream {self.host} {text} ({timing.names[stage]})")


class _Inflate:
    """One content coding undone in steps of at most `PIECE` bytes."""

    __slots__ = ("_coding", "_fallback", "_host", "_z")

    def __init__(self, coding: str, host: str) -> None:
        self._coding, self._host = coding, host
        # `deflate` is meant to be zlib-wrapped, but some servers send it raw (httpx, curl
        # and browsers all accept both).
        self._fallback = coding == "deflate"
        wbits = zlib.MAX_WBITS if self._fallback else zlib.MAX_WBITS | 16
        self._z = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """What `data` decompresses to, in pieces."""
        while not self._z.eof:
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error as exc:
                if not self._fallback:
                    raise self._broken(exc) from None
                self._fallback = False
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._fallback = False
            if out:
                yield out
            data = self._z.unconsumed_tail
            if not data and len(out) < PIECE:
                return  # a full piece may leave more output behind, even with no input
        # Bytes after the end of the compressed data are ignored, as httpx does.

    def _broken(self, exc: zlib.error) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"the upstream {self._host} sent a {self._coding} body that does not decompress: {exc}"
        )


def _inflaters(header: str, host: str) -> tuple[_Inflate, ...]:
    """The decoders for a Content-Encoding, in the order they apply."""
    layers = []
    for coding in reversed(header.lower().split(",")):
        coding = coding.strip()
        if coding in ("gzip", "x-gzip", "deflate"):
            layers.append(_Inflate("deflate" if coding == "deflate" else "gzip", host))
        elif coding not in ("", "identity"):
            raise UpstreamProtocolError(
                f"the upstream {host} answered in Content-Encoding {coding!r}, which the "
                f"gateway does not decode (it asks for {ACCEPT_ENCODING})"
            )
    return tuple(layers)


def _decoded(data: bytes, layers: tuple[_Inflate, ...]) -> Iterator[bytes]:
    if not layers:
        yield data
        return
    for piece in layers[0].feed(data):
        yield from _decoded(piece, layers[1:])


class UpstreamBody(httpx.AsyncByteStream):
    """An upstream answer's body: each read bounded by the watchdog, decoded in pieces.

    `received` counts the bytes as they came, which may not pass `most` (set by whoever
    reads a complete answer; a stream is bounded per event instead). `answer_bytes` is
    the most a complete answer may hold, as received and as decoded.
    """

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        watch: Watchdog,
        layers: tuple[_Inflate, ...],
        answer_bytes: int,
    ) -> None:
        self._stream = stream
        self._watch = watch
        self._layers = layers
        self.answer_bytes = answer_bytes
        self.most = sys.maxsize
        self.received = 0
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        source = self._stream.__aiter__()
        watch, layers = self._watch, self._layers
        while True:
            watch.arm(READ)
            try:
                chunk = await source.__anext__()
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                error = watch.timeout_error()
                if error is None:
                    raise
                raise error from None
            finally:
                watch.disarm()
            self.received += len(chunk)
            if self.received > self.most:
                # Checked here, not on what is decoded: bytes may decode to nothing.
                raise too_large(watch.host, self.most)
            if layers:
                for piece in _decoded(chunk, layers):
                    yield piece
            else:
                yield chunk

    @property
    def host(self) -> str:
        return self._watch.host

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._stream.aclose()


def bounded(response: httpx.Response, watch: Watchdog, answer_bytes: int) -> httpx.Response:
    """`response`, its body read through an `UpstreamBody` (and so no longer encoded)."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    headers = response.headers
    encoding = headers.get("content-encoding")
    layers = _inflaters(encoding, watch.host) if encoding else ()
    if encoding:
        del headers["content-encoding"]
        headers.pop("content-length", None)
    response.stream = UpstreamBody(stream, watch, layers, answer_bytes)
    return response


def too_large(host: str, limit: int) -> UpstreamProtocolError:
    """The error of a complete answer over `limits.answer_bytes`."""
    who = f"the upstream {host}" if host else "the upstream"
    return UpstreamProtocolError(
        f"{who} answered more than {limit} bytes (limits.answer_bytes, counted as received "
        "and after decompression); raise it in the provider file if answers this large "
        "are expected"
    )
