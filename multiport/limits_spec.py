"""`limits:` and `timeouts:` of a provider file, and of the folder's `_defaults.yaml`.

Every bound the gateway keeps is one field here, with its default and the error a client
meets when it is crossed; `docs/limits.md` explains each. A provider file's own `limits:`
keys win over the folder's defaults, key by key.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["DEFAULT_LIMITS", "AccessSpec", "DefaultsSpec", "LimitsSpec", "TimeoutsSpec"]

_MiB = 1 << 20

Bytes = Annotated[int, Meta(ge=1)]
Count = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(gt=0)]


class LimitsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Bounds on what a client, an upstream or a template may make the gateway hold or do."""

    request_bytes: Annotated[
        Bytes,
        Meta(
            description="Largest request body a client may send; over it: 413 `request_too_large`."
        ),
    ] = 32 * _MiB
    header_bytes: Annotated[
        Bytes,
        Meta(
            description="Largest request line and headers together; over it: 431 and the "
            "connection is closed."
        ),
    ] = 64 << 10
    header_seconds: Annotated[
        Seconds,
        Meta(
            description="Time from a request's first byte to the end of its headers; over "
            "it: 408 and the connection is closed (slow clients). A new connection that "
            "sends nothing for this long is closed."
        ),
    ] = 10.0
    body_seconds: Annotated[
        Seconds,
        Meta(description="Time to receive the request body after its headers; over it: 408."),
    ] = 60.0
    keep_alive_seconds: Annotated[
        Seconds,
        Meta(
            description="A connection idle between two requests is closed after this; "
            "longer than clients keep idle connections (httpx 5 s, Node 4 s), so a client "
            "never sends on a connection the gateway is closing."
        ),
    ] = 15.0
    send_seconds: Annotated[
        Seconds,
        Meta(
            description="A client that reads nothing of its answer for this long is "
            "disconnected; its request and upstream call end (a stream client that stopped "
            "reading would otherwise hold its place in flight)."
        ),
    ] = 60.0
    connections: Annotated[
        Count,
        Meta(
            description="Open client connections on this port; one more is answered 529 "
            "`overloaded_error` and closed."
        ),
    ] = 1024
    concurrent_requests: Annotated[
        Count,
        Meta(
            description="Upstream requests in flight for this provider; one more is "
            "answered 529 `overloaded_error` at once, never queued."
        ),
    ] = 256
    blocks: Annotated[
        Count,
        Meta(
            description="Content blocks in a request, all messages and the system prompt "
            "together; over it: 400 `invalid_request_error`."
        ),
    ] = 100_000
    tools: Annotated[
        Count, Meta(description="Tools in a request; over it: 400 `invalid_request_error`.")
    ] = 1_000
    model_chars: Annotated[
        Count,
        Meta(description="Longest model name a client may ask for; over it: 400."),
    ] = 256
    answer_bytes: Annotated[
        Bytes,
        Meta(
            description="Largest complete upstream answer, counted as sent and again after "
            "decompression; over it: 502 `api_error`."
        ),
    ] = 64 * _MiB
    stream_line_bytes: Annotated[
        Bytes,
        Meta(
            description="Largest line or event of an upstream stream; over it the stream "
            "ends with an `error` event."
        ),
    ] = 16 * _MiB
    render_seconds: Annotated[
        Seconds,
        Meta(
            description="Time one template render may take; over it: 500 `api_error` "
            "naming the template."
        ),
    ] = 2.0
    render_bytes: Annotated[
        Bytes,
        Meta(
            description="Largest text one template render may produce, and largest string "
            "or list built inside it; over it: 500 `api_error` naming the template."
        ),
    ] = 64 * _MiB


class TimeoutsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Upstream timeouts, in seconds; each ends the call with 504 `timeout_error`, or an
    `error` event once a stream has begun."""

    connect: Annotated[float, Meta(gt=0, description="Time to open a connection.")] = 10.0
    first_byte: Annotated[
        float,
        Meta(
            gt=0,
            description="Time from sending the request to the answer's headers (a "
            "non-streaming answer's headers come when it is complete).",
        ),
    ] = 180.0
    read: Annotated[
        float, Meta(gt=0, description="Longest silence between two reads of the answer.")
    ] = 120.0
    write: Annotated[float, Meta(gt=0, description="Time to send the request body.")] = 60.0
    pool: Annotated[float, Meta(gt=0, description="Time to wait for a free connection.")] = 10.0
    total: Annotated[
        float,
        Meta(gt=0, description="Longest time one upstream call may take, stream included."),
    ] = 900.0


class AccessSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Who may use a port: the keys a client must send (`x-api-key` or `Authorization:
    Bearer`), each from an environment variable; none: anyone who can reach the port."""

    keys: Annotated[
        list[str],
        Meta(
            description="Accepted client keys, each from the environment, e.g. "
            '`["${TEAM_GATEWAY_KEY}"]`; a client without one of them gets 401 '
            "`authentication_error`. Never write a key in the file."
        ),
    ] = []


class DefaultsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`_defaults.yaml` in a providers folder: what every file in it has unless it says
    otherwise."""

    limits: Annotated[LimitsSpec, Meta(description="Default limits.")] = LimitsSpec()
    timeouts: Annotated[TimeoutsSpec, Meta(description="Default timeouts.")] = TimeoutsSpec()
    access: Annotated[AccessSpec, Meta(description="Default inbound keys.")] = AccessSpec()


DEFAULT_LIMITS = LimitsSpec()
