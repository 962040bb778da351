"""Upstream stream bytes → Anthropic SSE frames: framing, the stream template, pings.

Nothing provider-specific: the framing (`sse` or `ndjson`) and the stream template come
from the provider's wire format; the state machine is in `streaming.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import msgspec

from .errors import ApiError, UpstreamProtocolError
from .streaming import LineFramer, StreamState, error_frame, sse_frame
from .templates import CompiledTemplate

__all__ = ["translate_stream"]

_decode = msgspec.json.decode
_PING = sse_frame("ping", {"type": "ping"})


async def translate_stream(
    source: AsyncIterator[bytes],
    state: StreamState,
    template: CompiledTemplate,
    context: dict[str, Any],
    *,
    framing: str,
    ping_interval: float,
) -> AsyncIterator[bytes]:
    """Upstream stream bytes → Anthropic SSE frames, with pings during silences.

    An upstream error inside the stream, a broken connection, or an end without a finish
    reason becomes one `error` event; nothing follows it.
    """
    framer = LineFramer(framing)
    ended = False  # the upstream said its stream is over ([DONE], or a `done` event)

    def translate(payloads: Iterable[bytes]) -> bytes:
        nonlocal ended
        out = []
        for payload in payloads:
            if ended:
                break  # nothing after the end counts; some servers keep the connection open
            if payload.strip() == b"[DONE]":
                ended = True
                break
            out.append(translate_one(payload))
        return b"".join(out)

    def translate_one(payload: bytes) -> bytes:
        try:
            chunk = _decode(payload)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(
                f"the upstream sent an invalid stream chunk: {payload[:120]!r}"
            ) from exc
        if not isinstance(chunk, dict):
            return b""
        event = template.render(chunk=chunk, **context)
        if not isinstance(event, dict):
            return b""
        if event.get("done"):
            nonlocal ended
            ended = True
        return state.feed(event)

    yield state.start()
    try:
        async for raw in _with_pings(source, ping_interval):
            if raw is None:
                yield _PING
                continue
            out = translate(framer.feed(raw))
            if out:
                yield out
            if ended:
                break
        else:
            out = translate(framer.close())
            if out:
                yield out
    except UpstreamProtocolError as exc:
        if state.stop_reason is None:
            yield error_frame(exc.error_type, exc.message)
            return
        # A torn last line after the finish reason loses nothing the client needs.
    except ApiError as exc:
        yield error_frame(exc.error_type, exc.message)
        return
    except httpx.TimeoutException:
        yield error_frame("timeout_error", "the upstream went silent mid-stream")
        return
    except httpx.HTTPError as exc:
        yield error_frame("api_error", f"the upstream stream broke: {type(exc).__name__}")
        return
    yield state.finish()


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
                if done:
                    pending = None
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
