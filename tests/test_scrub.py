"""Secrets never leave: error bodies, stream error events and log lines are scrubbed."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
import respx
from litestar.testing import TestClient

from .apps import (
    SECRET,
    UPSTREAM,
    anthropic_app,
    ask,
    delta,
    sse,
    stream_events,
)
from .stream_checker import check_stream


def test_in_band_stream_error_is_scrubbed(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    error = {"error": {"message": f"invalid key Bearer {SECRET}"}}
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=sse(delta(content="a"), error))
    events = stream_events(ask(client, stream=True))
    check_stream(events, expect_error=True)
    message = events[-1][1]["error"]["message"]
    assert "invalid key" in message
    assert SECRET not in message
    assert "[redacted]" in message


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        (False, f"<html>bad gateway for Bearer {SECRET}</html>".encode()),
        (True, sse(delta(content="a")) + f"data: {{not json Bearer {SECRET}\n\n".encode()),
        (True, f"data: {{not json Bearer {SECRET}\n\n".encode()),
    ],
    ids=["invalid-json-answer", "invalid-chunk-after-text", "invalid-first-chunk"],
)
def test_upstream_excerpts_are_scrubbed(
    client: TestClient[Any], respx_mock: respx.MockRouter, stream: bool, body: bytes
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=body)
    response = ask(client, stream=stream)
    assert SECRET not in response.text
    assert "[redacted]" in response.text
    if stream:
        check_stream(stream_events(response), expect_error=True)
    else:
        assert response.status_code == 502


def test_passthrough_never_echoes_the_clients_own_key(
    tmp_path: Path, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    own_key = "sk-ant-client-own-key-987654321"
    echo = {"type": "error", "error": {"type": "authentication_error", "message": f"bad {own_key}"}}
    respx_mock.post("http://anthropic.test/v1/messages").respond(401, json=echo)
    app = anthropic_app(tmp_path, auth="  header: x-api-key\n  passthrough: true\n")
    with TestClient(app) as client:
        response = client.post(
            "/v1/messages",
            headers={"x-api-key": own_key},
            json={
                "model": "claude-x",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert response.status_code == 401
    assert own_key not in response.text
    assert "bad [redacted]" in response.json()["error"]["message"]
    assert "bad [redacted]" in caplog.text  # logged, and scrubbed there too
    assert own_key not in caplog.text


def test_a_secret_at_the_end_of_a_long_upstream_error_is_not_cut_in_two(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    for padding in (490, 990, 1990):
        respx_mock.post(f"{UPSTREAM}/chat/completions").respond(500, text="x" * padding + SECRET)
        response = ask(client)
        assert response.status_code == 500
        assert SECRET[:8] not in response.text, padding


def test_log_lines_are_scrubbed_at_the_handler() -> None:
    from multiport.scrub import Scrubber, guard_logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        guard_logs(Scrubber([SECRET]))
        logging.getLogger("multiport.anything").warning("upstream said: bad key %s", SECRET)
    finally:
        root.removeHandler(handler)
    assert "bad key [redacted]" in stream.getvalue()
    assert SECRET not in stream.getvalue()
