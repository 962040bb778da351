"""Anthropic upstreams: the body forwarded as is, the stream relayed and checked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from litestar.testing import TestClient

from .apps import anthropic_app
from .stream_checker import parse_sse


def test_passthrough_forwards_what_it_does_not_read(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    answer = {"type": "message", "content": [{"type": "text", "text": "hi"}]}
    route = respx_mock.post("http://anthropic.test/v1/messages").respond(json=answer)
    body = {
        "model": "claude-x",
        "max_tokens": 5,
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "s"}],
        "messages": [{"role": "user", "content": [{"type": "brand_new_block", "x": 1}]}],
    }
    with TestClient(anthropic_app(tmp_path)) as client:
        response = client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    assert json.loads(route.calls.last.request.content) == body


def test_a_passthrough_stream_cut_short_ends_with_an_error_event(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    cut = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    respx_mock.post("http://anthropic.test/v1/messages").respond(content=cut)
    body = {
        "model": "claude-x",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with TestClient(anthropic_app(tmp_path)) as client:
        response = client.post("/v1/messages", json=body)
    assert response.content.startswith(cut)
    names = [name for name, _ in parse_sse(response.content)]
    assert names == ["message_start", "error"]


def test_count_tokens_is_the_anthropic_upstreams_own(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post("http://anthropic.test/v1/messages/count_tokens").respond(
        json={"input_tokens": 4242}
    )
    body = {"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "hi"}]}
    mappings = "  - match: haiku\n    target: claude-haiku-real\n"
    options = "options:\n  count_tokens: upstream\n"
    with TestClient(anthropic_app(tmp_path, mappings=mappings, options=options)) as client:
        response = client.post("/v1/messages/count_tokens", json=body)
    assert response.json() == {"input_tokens": 4242}
    sent = json.loads(route.calls.last.request.content)
    assert sent == {**body, "model": "claude-haiku-real"}
    assert route.calls.last.request.headers["x-api-key"] == "key-0123456789"


def test_count_tokens_is_estimated_locally_unless_the_upstream_counts(tmp_path: Path) -> None:
    # No route is mocked: an upstream call would fail the test.
    body = {
        "model": "claude-x",
        "messages": [{"role": "user", "content": [{"type": "brand_new_block", "text": "x" * 400}]}],
    }
    with TestClient(anthropic_app(tmp_path)) as client:
        counted = client.post("/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert counted > 50  # a rough count of a body the strict reader does not know


async def test_a_passthrough_stream_is_cut_at_events_whatever_the_reads() -> None:
    from multiport.passthrough import passthrough_stream
    from multiport.scrub import Scrubber

    secret = "sk-relayed-secret-0123456789"
    events = (
        b'event: message_start\ndata: {"type":"message_start"}\n\n'
        + f'event: content_block_delta\ndata: {{"text":"{secret}"}}\n\n'.encode()
        + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )

    async def one_byte_at_a_time() -> AsyncIterator[bytes]:
        for i in range(len(events)):
            yield events[i : i + 1]

    out = [p async for p in passthrough_stream(one_byte_at_a_time(), Scrubber([secret]), "h")]
    assert b"".join(out) == events.replace(secret.encode(), b"[redacted]")
    assert all(piece.endswith(b"\n\n") for piece in out)  # whole events only


async def test_an_upstream_answer_larger_than_the_cap_is_an_upstream_error(
    respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multiport import upstream as upstream_module
    from multiport.errors import UpstreamProtocolError

    monkeypatch.setattr(upstream_module, "MAX_BODY", 1000)
    respx_mock.get("http://big.test/").respond(content=b"x" * 5000)
    async with httpx.AsyncClient() as client, client.stream("GET", "http://big.test/") as response:
        with pytest.raises(UpstreamProtocolError, match="more than"):
            await upstream_module.read_body(response)
