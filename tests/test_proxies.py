"""Outbound proxies: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, and `proxy:` in the file.

A small forward proxy on loopback (`LoopbackProxy`) relays absolute-form requests to the
scripted upstream and records each one, so a test sees whether a request went through it.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from multiport.compile import load_providers
from multiport.errors import UpstreamUnreachable
from multiport.provider import Provider
from multiport.proxies import UnusableProxy, bypassed, choose_proxy
from multiport.upstream import Upstream, read_body

from .gateway import Gateway
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, chat_completion, free_port, text_chunks

TRANSPORTS = ["aiohttp", "httpx"]
PASSWORD = "pr0xy-pa55word-4812"
# Every proxy variable a test might inherit from the shell, unset unless a test sets it.
NO_PROXY_ENV = {
    name: ""
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
}
_CHAT = b'{"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}'
_HOP = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Relayed:
    """One request the proxy relayed: its method, absolute URL and Proxy-Authorization
    (every one it got, joined: a credential sent twice shows)."""

    method: str
    url: str
    authorization: str | None


class LoopbackProxy:
    """A forward proxy on 127.0.0.1 for plain http://: absolute-form requests are relayed
    to their target and recorded in `relayed`; no CONNECT."""

    def __init__(self) -> None:
        self.relayed: list[Relayed] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackProxy:
        self._thread.start()
        assert self._ready.wait(10), "the loopback proxy did not start"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        assert not self._thread.is_alive(), "the loopback proxy thread did not stop"

    def targets(self) -> list[tuple[str, str]]:
        """(method, path) of each relayed request."""
        return [(r.method, httpx.URL(r.url).path) for r in self.relayed]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._session = self._loop.run_until_complete(_client_session())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _shutdown(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        if not target.startswith("http://"):
            return web.Response(status=400, text="a proxy takes absolute-form requests only")
        headers = request.headers
        authorization = ", ".join(headers.getall("proxy-authorization", [])) or None
        self.relayed.append(Relayed(request.method, target, authorization))
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, target, headers=sent, data=await request.read(), allow_redirects=False
        ) as answer:
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            response = web.StreamResponse(status=answer.status, headers=kept)
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)  # piece by piece: a stream stays a stream
            await response.write_eof()
        return response


async def _client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[LoopbackProxy]:
    server = LoopbackProxy().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def proxy(proxy_server: LoopbackProxy) -> LoopbackProxy:
    """The module's loopback proxy, with nothing relayed yet."""
    proxy_server.relayed.clear()
    return proxy_server


@pytest.fixture
def upstream(upstream_server: ScriptedUpstream) -> ScriptedUpstream:
    """The module's scripted upstream, with nothing seen or queued yet."""
    upstream_server.reset()
    return upstream_server


def _provider_file(
    folder: Path, base_url: str, *, port: int = 9490, extra: str = "", catalog: str = "/models"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "proxied.yaml"
    path.write_text(
        f"port: {port}\nbase_url: {base_url}\nauth:\n  value: Bearer sk-proxied-0123456789\n"
        f"catalog:\n  url: {catalog}\n  refresh: 0\n"
        f"mappings:\n  - match: ^claude-\n    target: gpt-4.1\n{extra}"
    )
    return path


def _provider(tmp_path: Path, base_url: str, **kwargs: Any) -> Provider:
    path = _provider_file(tmp_path / "providers.d", base_url, **kwargs)
    result = load_providers([str(path)], {})
    assert not result.errors, result.problems
    return result.providers[0]


def _env(transport: str, **proxies: str) -> dict[str, str]:
    return {**NO_PROXY_ENV, "MULTIPORT_TRANSPORT": transport, **proxies}


async def _ask_and_list(upstream: Upstream, provider: Provider) -> None:
    """One message request and one catalog fetch through `upstream`."""
    headers = {"content-type": "application/json"}
    async with upstream.open(provider.messages_url, headers, _CHAT) as response:
        assert b'"choices"' in await read_body(response)
    assert provider.catalog is not None
    assert provider.catalog.url is not None
    status, document, _ = await upstream.get_json(provider.catalog.url, {}, 5)
    assert status == 200
    assert document["data"][0]["id"] == "gpt-4.1"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- which proxy: the rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("api.example.com", "api.example.com", 443, True),
        ("example.com", "api.example.com", 443, True),  # a host covers its subdomains
        ("example.com", "notexample.com", 443, False),
        (".example.com", "api.example.com", 443, True),
        ("*.example.com", "api.example.com", 443, True),
        ("other.test, *", "api.example.com", 443, True),
        ("other.test example.com", "API.Example.com", 443, True),  # spaces, any case
        ("api.example.com:8443", "api.example.com", 8443, True),
        ("api.example.com:8443", "api.example.com", 443, False),
        ("127.0.0.1", "127.0.0.1", 8080, True),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("[::1]:8080", "::1", 8080, True),
        ("::1", "0:0::1", 80, True),
        ("localhost", "127.0.0.1", 80, False),
        ("", "api.example.com", 443, False),
    ],
)
def test_no_proxy_matches_hosts_domains_ports_and_networks(
    no_proxy: str, host: str, port: int, direct: bool
) -> None:
    assert bypassed(no_proxy, host, port) is direct


def test_the_variable_for_the_scheme_decides_lower_case_first() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://lower:2",
        "HTTP_PROXY": "plain:3",
        "ALL_PROXY": "http://all:4",
    }
    chosen = choose_proxy(None, "https://api.example.com/v1", env)
    assert chosen is not None
    assert (chosen.url, chosen.source) == ("http://lower:2", "https_proxy")
    chosen = choose_proxy(None, "http://api.example.com/v1", env)
    assert chosen is not None
    assert chosen.url == "http://plain:3"  # no scheme: http://
    chosen = choose_proxy(True, "https://api.example.com/v1", {"all_proxy": "http://all:4"})
    assert chosen is not None
    assert chosen.source == "all_proxy"
    assert choose_proxy(None, "https://api.example.com/v1", {"HTTPS_PROXY": " "}) is None


def test_the_file_decides_before_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}
    assert choose_proxy(False, "https://api.example.com", env) is None
    chosen = choose_proxy("http://file:2", "https://api.example.com", env)
    assert chosen is not None
    assert chosen.url == "http://file:2"  # NO_PROXY is the env's
    chosen = choose_proxy("", "https://api.example.com", {"HTTPS_PROXY": "http://env:1"})
    assert chosen is not None
    assert chosen.url == "http://env:1"  # `${VAR:-}` left empty


def test_an_unusable_proxy_variable_is_named_without_its_password() -> None:
    env = {"ALL_PROXY": f"socks5://me:{PASSWORD}@127.0.0.1:1080"}
    with pytest.raises(UnusableProxy) as raised:
        choose_proxy(None, "https://api.example.com", env)
    assert "ALL_PROXY" in str(raised.value)
    assert "socks5://127.0.0.1:1080" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_proxy_in_the_file_is_checked_and_its_password_is_a_secret(tmp_path: Path) -> None:
    bad = _provider_file(tmp_path / "bad", "http://x.test", extra=f"proxy: ftp://u:{PASSWORD}@h\n")
    problems = load_providers([str(bad)], {}).errors
    assert [p.path for p in problems] == ["$.proxy"]
    assert "http:// or https://" in problems[0].message
    assert PASSWORD not in problems[0].message
    # Written in the file, through no variable: the URL's password is a secret all the same.
    extra = f"proxy: http://me:{PASSWORD}@proxy.corp:3128\n"
    good = _provider_file(tmp_path / "good", "http://x.test", extra=extra)
    result = load_providers([str(good)], {})
    assert not result.errors
    assert PASSWORD in result.providers[0].secrets


# -- requests through the loopback proxy --------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_variable_carries_messages_and_catalog(
    transport: str, tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    provider = _provider(tmp_path, upstream.url + "/v1")
    upstream.reply(Reply(json=chat_completion("via proxy")))
    env = _env(transport, HTTP_PROXY=f"http://me:{PASSWORD}@127.0.0.1:{proxy.port}")
    client = Upstream(provider, environ=env)
    try:
        await _ask_and_list(client, provider)
    finally:
        await client.aclose()
    assert proxy.targets() == [("POST", "/v1/chat/completions"), ("GET", "/v1/models")]
    assert {r.authorization for r in proxy.relayed} == {_basic("me", PASSWORD)}
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "{host_port}"])
async def test_no_proxy_goes_direct(
    transport: str,
    no_proxy: str,
    tmp_path: Path,
    proxy: LoopbackProxy,
    upstream: ScriptedUpstream,
) -> None:
    provider = _provider(tmp_path, upstream.url + "/v1")
    upstream.reply(Reply(json=chat_completion("direct")))
    no_proxy = no_proxy.format(host_port=f"127.0.0.1:{upstream.port}")
    env = _env(transport, http_proxy=proxy.url, NO_PROXY=f"other.test,{no_proxy}")
    client = Upstream(provider, environ=env)
    try:
        await _ask_and_list(client, provider)
    finally:
        await client.aclose()
    assert proxy.relayed == []
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_proxy_may_cover_the_catalog_and_not_the_messages(
    transport: str, tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    provider = _provider(
        tmp_path, upstream.url + "/v1", catalog=f"http://localhost:{upstream.port}/v1/models"
    )
    upstream.reply(Reply(json=chat_completion("split")))
    env = _env(transport, HTTP_PROXY=proxy.url, no_proxy="localhost")
    client = Upstream(provider, environ=env)
    try:
        await _ask_and_list(client, provider)
    finally:
        await client.aclose()
    assert proxy.targets() == [("POST", "/v1/chat/completions")]
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_false_ignores_the_environment(
    transport: str, tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    provider = _provider(tmp_path, upstream.url + "/v1", extra="proxy: false\n")
    upstream.reply(Reply(json=chat_completion("direct")))
    env = _env(transport, HTTP_PROXY=proxy.url, ALL_PROXY=proxy.url)
    client = Upstream(provider, environ=env)
    try:
        await _ask_and_list(client, provider)
    finally:
        await client.aclose()
    assert proxy.relayed == []
    assert len(upstream.seen) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_in_the_file_needs_no_environment(
    transport: str, tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    extra = f"proxy: http://127.0.0.1:{proxy.port}\n"
    provider = _provider(tmp_path, upstream.url + "/v1", extra=extra)
    upstream.reply(Reply(json=chat_completion("via file")))
    client = Upstream(provider, environ=_env(transport))
    try:
        await _ask_and_list(client, provider)
    finally:
        await client.aclose()
    assert proxy.targets() == [("POST", "/v1/chat/completions"), ("GET", "/v1/models")]
    assert proxy.relayed[0].authorization is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unreachable_proxy_is_named_in_the_error_without_its_password(
    transport: str, tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    provider = _provider(tmp_path, upstream.url + "/v1")
    dead = f"http://me:{PASSWORD}@127.0.0.1:{free_port()}"
    client = Upstream(provider, environ=_env(transport, HTTP_PROXY=dead))
    try:
        with pytest.raises(UpstreamUnreachable) as raised:
            async with client.open(provider.messages_url, {}, b"{}") as response:
                await read_body(response)
    finally:
        await client.aclose()
    message = str(raised.value)
    assert "through the proxy http://127.0.0.1:" in message
    assert "HTTP_PROXY" in message
    assert PASSWORD not in message
    assert upstream.seen == []


# -- the gateway end to end ----------------------------------------------------------------


def _serve(
    tmp_path: Path, upstream: ScriptedUpstream, env: Mapping[str, str], extra: str = ""
) -> Gateway:
    port = free_port()
    folder = tmp_path / "providers.d"
    _provider_file(folder, upstream.url + "/v1", port=port, extra=extra)
    full = {**NO_PROXY_ENV, "MULTIPORT_CACHE_DIR": str(tmp_path / "cache"), **env}
    return Gateway([str(folder), "--verbose"], full, [port], tmp_path)


def _catalog_live(client: httpx.Client, gateway: Gateway) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state: dict[str, Any] = client.get(gateway.url() + "/health").json()["catalog"]
        if state["source"] == "live":
            return state
        time.sleep(0.05)
    raise AssertionError(f"the catalog never came through the proxy: {state}")


def _message_and_stream(client: httpx.Client, gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reply(Reply(json=chat_completion("whole")), Reply(sse=text_chunks("str", "eamed")))
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    whole = client.post(gateway.url() + "/v1/messages", json=body)
    assert whole.status_code == 200, whole.text
    assert whole.json()["content"] == [{"type": "text", "text": "whole"}]
    with client.stream(
        "POST", gateway.url() + "/v1/messages", json={**body, "stream": True}
    ) as streamed:
        assert streamed.status_code == 200
        message = check_stream(parse_sse(streamed.read()))
    assert message["content"] == [{"type": "text", "text": "streamed"}]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gateway_reaches_upstream_through_the_proxy_variable(
    transport: str, tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    env = {"MULTIPORT_TRANSPORT": transport, "http_proxy": f"http://me:{PASSWORD}@{proxy.url[7:]}"}
    gateway = _serve(tmp_path, upstream, env)
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            _catalog_live(client, gateway)
            _message_and_stream(client, gateway, upstream)
            info = client.get(gateway.url() + "/info").text
    finally:
        log = gateway.stop()
    assert proxy.targets() == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
    ]
    assert upstream.seen[-1].body["stream"] is True
    assert f'"proxy":"{proxy.url}"' in info
    assert f"through the proxy {proxy.url} (set by http_proxy)" in log
    assert PASSWORD not in info
    assert PASSWORD not in log
    assert "Traceback" not in log


def test_gateway_proxy_in_the_file_keeps_its_password_out_of_log_and_info(
    tmp_path: Path, proxy: LoopbackProxy, upstream: ScriptedUpstream
) -> None:
    extra = f"proxy: http://me:${{CORP_PROXY_PASS}}@{proxy.url[7:]}\n"
    env = {"CORP_PROXY_PASS": PASSWORD, "NO_PROXY": "*"}
    gateway = _serve(tmp_path, upstream, env, extra)
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            _catalog_live(client, gateway)
            _message_and_stream(client, gateway, upstream)
            info = client.get(gateway.url() + "/info").text
    finally:
        log = gateway.stop()
    assert [method for method, _ in proxy.targets()] == ["GET", "POST", "POST"]
    assert {r.authorization for r in proxy.relayed} == {_basic("me", PASSWORD)}
    assert f'"proxy":"{proxy.url}"' in info
    assert PASSWORD not in info
    assert PASSWORD not in log
