"""An Anthropic upstream's stream, passed through event by event with secrets scrubbed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from .errors import UpstreamStreamError
from .framing import MAX_PAYLOAD, too_long
from .scrub import Scrubber
from .upstream import stream_error

__all__ = ["passthrough_stream", "with_model"]


async def passthrough_stream(
    source: AsyncIterator[bytes], scrub: Scrubber, host: str, limit: int = MAX_PAYLOAD
) -> AsyncIterator[bytes]:
    """The upstream's bytes, cut at event boundaries so no secret is split between reads.

    Each byte is searched for a boundary once, whatever the sizes of the reads. An event
    is held whole until its end, so one longer than `limit` bytes is an upstream error.
    """
    held = bytearray()
    scanned = 0  # bytes of `held` already searched for a boundary
    ended = False  # a message_stop or an error event went by
    try:
        async for chunk in source:
            held += chunk
            cut = _boundary(held, max(0, scanned - 3))
            scanned = len(held)
            if cut == -1:
                if len(held) > limit:
                    raise too_long(host, limit)
                continue
            piece = bytes(held[:cut])
            del held[:cut]
            scanned = len(held)
            ended = ended or b"event: message_stop" in piece or b"event: error" in piece
            yield scrub.bytes(piece)
    except httpx.HTTPError as exc:
        raise stream_error(exc, host) from None
    rest = bytes(held)
    if b"event: message_stop" in rest or b"event: error" in rest:
        ended = True
        yield scrub.bytes(rest)
    # Otherwise the rest is an event torn off before its end: dropped, as an SSE reader
    # would, so the error event below is read as an event of its own.
    if not ended:
        # Never a fake end: a stream cut short says so.
        raise UpstreamStreamError(f"the upstream {host} stream ended before message_stop")


def _boundary(data: bytearray, start: int) -> int:
    """Where the last complete event ends, searching from `start`, or -1."""
    lf, crlf = data.rfind(b"\n\n", start), data.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf != -1 else -1, crlf + 4 if crlf != -1 else -1)


def with_model(body: bytes, model: str, target: str) -> bytes:
    """The client's body for an Anthropic upstream, with the mapped model."""
    if target == model:
        return body
    document = msgspec.json.decode(body)
    document["model"] = target
    return msgspec.json.encode(document)
