"""The upstream client: a redirect is the upstream's fault, told without leaking secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.errors import UpstreamError
from multiport.provider import Provider
from multiport.upstream import Upstream, make_transport

from .upstream_server import Reply, ScriptedUpstream

SECRET = "sk-upstream-secret"


def _provider(tmp_path: Path, base_url: str = "http://upstream.test/v1") -> Provider:
    (tmp_path / "p.yaml").write_text(
        f"port: 9402\nbase_url: {base_url}\nauth:\n  value: Bearer {SECRET}\n"
        "mappings:\n  - match: ^claude-\n    target: big-model\n"
    )
    result = load_providers([str(tmp_path / "p.yaml")], {})
    assert not result.errors, result.problems
    return result.providers[0]


async def _redirect_error(provider: Provider, transport: httpx.AsyncBaseTransport) -> UpstreamError:
    upstream = Upstream(provider, transport)
    try:
        with pytest.raises(UpstreamError) as raised:
            async with upstream.open(provider.messages_url, {}, b"{}"):
                pass
    finally:
        await upstream.aclose()
    return raised.value


@pytest.mark.parametrize(
    ("status", "location", "told"),
    [
        (
            301,
            f"https://user:{SECRET}@api.moved.test/v2/chat/completions?key={SECRET}&x=1#top",
            "redirected the request (HTTP 301) to https://api.moved.test/v2/chat/completions; "
            "set base_url to https://api.moved.test/v2",
        ),
        (
            307,
            "/v2/chat/completions?api_key=hidden",
            "redirected the request (HTTP 307) to http://upstream.test/v2/chat/completions; "
            "set base_url to http://upstream.test/v2",
        ),
        (
            302,
            "https://login.moved.test/sso",
            "redirected the request (HTTP 302) to https://login.moved.test/sso; "
            "point base_url there",
        ),
        (
            308,
            None,
            "redirected the request (HTTP 308) without a usable Location; check base_url",
        ),
    ],
    ids=["absolute-with-secrets", "relative", "elsewhere", "no-location"],
)
async def test_redirect_is_a_502_naming_host_and_target(
    tmp_path: Path, respx_mock: respx.MockRouter, status: int, location: str | None, told: str
) -> None:
    provider = _provider(tmp_path)
    headers = {"location": location} if location else {}
    respx_mock.post("http://upstream.test/v1/chat/completions").respond(status, headers=headers)
    error = await _redirect_error(provider, httpx.AsyncHTTPTransport())
    assert (error.status_code, error.error_type) == (502, "api_error")
    assert error.message == f"upstream upstream.test {told}"
    for leak in (SECRET, "user", "key=", "hidden", "?", "#"):
        assert leak not in error.message


async def test_real_transport_does_not_follow_a_redirect(tmp_path: Path) -> None:
    server = ScriptedUpstream().start()
    try:
        server.strict = False  # the body here is no chat request
        server.reply(Reply(status=301, headers={"Location": server.url + "/v2/chat/completions"}))
        provider = _provider(tmp_path, server.url + "/v1")
        error = await _redirect_error(provider, make_transport("aiohttp"))
        assert [seen.path for seen in server.seen] == ["/v1/chat/completions"]
    finally:
        server.stop()
    assert error.status_code == 502
    assert f"set base_url to {server.url}/v2" in error.message


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(_provider(tmp_path), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as test_client:
        yield test_client


def test_client_sees_redirect_as_api_error(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    respx_mock.post("http://upstream.test/v1/chat/completions").respond(
        301, headers={"location": "https://api.moved.test/v1/chat/completions"}
    )
    response = client.post(
        "/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "upstream.test redirected" in error["message"]
    assert "set base_url to https://api.moved.test/v1" in error["message"]
