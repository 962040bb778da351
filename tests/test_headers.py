"""The file's headers replace the gateway's own, whatever their case, on every request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.upstream import make_transport

from .upstream_server import Reply, ScriptedUpstream, chat_completion


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


def _lines(seen_headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in seen_headers if key.lower() == name]


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_a_header_in_the_file_replaces_the_default_on_every_request(
    tmp_path: Path, upstream: ScriptedUpstream, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "p.yaml").write_text(
        f"port: 9500\nbase_url: {upstream.url}/v1\nauth:\n  value: Bearer sk-test-0123456789\n"
        "headers:\n  User-Agent: acme/1\n  Accept: null\n"
        "catalog:\n  url: /models\nmappings:\n  - match: .\n    target: gpt-4.1\n"
    )
    provider = load_providers([str(tmp_path / "p.yaml")], {}).providers[0]
    upstream.reply(Reply(json=chat_completion("hi")))
    app = create_app(provider, transport=make_transport(transport))
    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while not any(s.method == "GET" for s in upstream.seen) and time.monotonic() < deadline:
            time.sleep(0.02)
        body = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/messages", json=body).status_code == 200
    catalog = next(s for s in upstream.seen if s.method == "GET")
    message = next(s for s in upstream.seen if s.method == "POST")
    for seen in (catalog, message):
        assert _lines(seen.raw_headers, "user-agent") == ["acme/1"], seen.raw_headers
        assert _lines(seen.raw_headers, "authorization") == ["Bearer sk-test-0123456789"]
    assert _lines(message.raw_headers, "accept") in ([], ["*/*"])  # removed: none of ours


def test_a_header_template_carries_the_request_id_the_client_sees(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    (tmp_path / "p.yaml").write_text(
        f"port: 9501\nbase_url: {upstream.url}/v1\n"
        "headers:\n  X-Request-Id: 'mp-{{ request_id }}'\n  X-Model: '{{ model }}'\n"
        "mappings:\n  - match: .\n    target: gpt-4.1\n"
    )
    provider = load_providers([str(tmp_path / "p.yaml")], {}).providers[0]
    upstream.reply(Reply(json=chat_completion("hi")))
    with TestClient(create_app(provider, transport=make_transport("httpx"))) as client:
        body = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        response = client.post("/v1/messages", json=body)
    seen = upstream.seen[-1]
    assert _lines(seen.raw_headers, "x-request-id") == [f"mp-{response.headers['request-id']}"]
    assert _lines(seen.raw_headers, "x-model") == ["gpt-4.1"]


def test_a_header_template_sees_only_request_id_and_model(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9502\nbase_url: http://x\nheaders:\n  X-Key: '{{ options }}'\n"
    )
    result = load_providers([str(tmp_path / "p.yaml")], {})
    [problem] = result.errors
    assert problem.path == "$.headers.X-Key"
    assert "sees only model, request_id" in problem.message
