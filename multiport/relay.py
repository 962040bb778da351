"""Upstream stream bytes → Anthropic SSE frames: framing, the stream template, pings.

Nothing provider-specific: the framing (`sse` or `ndjson`) and the stream template come
from the provider's wire format; the rules are in `streaming.py`. A failure raises an
`ApiError`; the engine turns it into the one `error` event that ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import msgspec

from .errors import (
    ApiError,
    TemplateInputError,
    UpstreamProtocolError,
)
from .framing import MAX_PAYLOAD, LineFramer
from .scrub import Scrubber, clean, error_event, excerpt
from .streaming import StreamState, encode_events, sse_frame
from .templates import CompiledTemplate
from .upstream import stream_error

__all__ = ["ending_in_error_event", "guarded", "translate_stream"]

log = logging.getLogger("multiport.relay")

_decode = msgspec.json.decode
_PING = sse_frame("ping", {"type": "ping"})
_DONE = b"[DONE]"


class _Translator:
    """Payloads → frames; `ended` once the upstream said its stream is over."""

    def __init__(
        self, state: StreamState, template: CompiledTemplate, context: dict[str, Any], host: str
    ) -> None:
        self.state = state
        self.render = template.renderer("chunk", **context)
        self.host = host
        self.ended = False
        self.payloads = 0

    def frames(self, payloads: Iterable[bytes]) -> bytes:
        out = []
        for payload in payloads:
            if self.ended:
                break  # nothing after the end counts; some servers keep the connection open
            self.payloads += 1
            if payload.strip() == _DONE:
                self.ended = True
                break
            out.extend(self._one(payload))
        return encode_events(out) if out else b""

    def _one(self, payload: bytes) -> list[dict[str, Any]]:
        chunk = _chunk(payload, self.host)
        if not isinstance(chunk, dict):
            return []
        try:
            event = self.render(chunk)
        except TemplateInputError as exc:
            raise UpstreamProtocolError(
                f"the upstream {self.host} sent a chunk the stream template cannot read: "
                f"{exc.message}"
            ) from None
        if event is None:
            return []
        if event.done:
            self.ended = True
        return self.state.feed(event)


def _chunk(payload: bytes, host: str) -> Any:
    try:
        return _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise UpstreamProtocolError(
            f"the upstream {host} sent an invalid stream chunk: {excerpt(payload)}"
        ) from None


async def translate_stream(
    source: AsyncIterator[bytes],
    state: StreamState,
    template: CompiledTemplate,
    context: dict[str, Any],
    *,
    framing: str,
    ping_interval: float,
    host: str,
    line_bytes: int = MAX_PAYLOAD,
) -> AsyncIterator[bytes]:
    """Upstream stream bytes → Anthropic SSE frames, with pings during silences.

    Raises an `ApiError` when the upstream reports an error, breaks, goes silent, sends
    an event longer than `line_bytes`, or ends without a finish reason; a torn last line
    after the finish reason is not a failure.
    """
    framer = LineFramer(framing, line_bytes, host)
    translator = _Translator(state, template, context, host)
    yield encode_events([state.start()])
    try:
        async for raw in _with_pings(source, ping_interval):
            if raw is None:
                yield _PING
                continue
            out = translator.frames(framer.feed(raw))
            if out:
                yield out
            if translator.ended:
                break
        else:
            out = translator.frames(framer.close())
            if out:
                yield out
    except UpstreamProtocolError:
        if state.stop_reason is None:
            raise
        # A torn last line after the finish reason loses nothing the client needs.
    except httpx.HTTPError as exc:
        raise stream_error(exc, host) from None
    if translator.payloads == 0:
        raise UpstreamProtocolError(
            f"the upstream {host} stream held no {framing} event; check `wire.framing` "
            "against what the upstream sends"
        )
    yield encode_events(state.finish())


async def ending_in_error_event(
    frames: AsyncIterator[bytes], scrub: Scrubber, provider: str
) -> AsyncIterator[bytes]:
    """The frames; any failure ends them with one `error` event and one log line."""
    try:
        async for frame in frames:
            yield frame
    except ApiError as exc:
        log.warning("%s: stream failed: %s", provider, clean(exc.message, scrub))
        yield error_event(exc.error_type, exc.message, scrub)
    except Exception as exc:
        detail = clean(f"{type(exc).__name__}: {' '.join(str(exc).split())}", scrub)
        log.error("%s: stream failed unexpectedly: %s", provider, detail)
        message = f"the gateway failed mid-stream ({type(exc).__name__}); see its log"
        yield error_event("api_error", message, scrub)


async def _with_pings(source: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes | None]:
    """The source's chunks, and None after each `interval` seconds of silence."""
    iterator = source.__aiter__()
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def guarded(
    frames: AsyncIterator[bytes], stack: contextlib.AsyncExitStack, scrub: Scrubber, label: str
) -> AsyncIterator[bytes]:
    """The frames, ended by one `error` event on failure (logged with `label`); the upstream
    call closed."""
    async with stack:
        async for frame in ending_in_error_event(frames, scrub, label):
            yield frame
