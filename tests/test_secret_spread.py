"""A secret used anywhere in a provider file never shows: not in `/info`, `/v1/models`,
`route`, `models`, error bodies, log lines or the catalog cache; and the provider's
credentials go to the catalog only on the base URL's origin."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from multiport.catalog import Catalog
from multiport.cli import main
from multiport.compile import load_providers
from multiport.provider import Provider
from multiport.server import serve
from multiport.upstream import Upstream

from .gateway import Gateway
from .upstream_server import Reply, ScriptedUpstream, free_port

API_KEY = "sk-spread-api-key-0001"
HEADER_KEY = "hk-spread-header-0002"
CATALOG_KEY = "ck-spread-catalog-0003"
TENANT_TOKEN = "tt-spread-tenant-0004"
SECRETS = (API_KEY, HEADER_KEY, CATALOG_KEY, TENANT_TOKEN)

PROVIDER = """\
port: {port}
base_url: ${{SPREAD_BASE_URL}}
auth:
  value: Bearer ${{SPREAD_API_KEY}}
headers:
  x-key: "${{SPREAD_HEADER_KEY}}"
  x-title: multiport-tests
catalog:
  url: {catalog_url}
  headers:
    x-catalog: asked-for
  fallback: ["tenant-${{SPREAD_TENANT_TOKEN}}"]
mappings:
  - match: ^claude-
    target: "tenant-${{SPREAD_TENANT_TOKEN}}"
"""


def _env(upstream: ScriptedUpstream) -> dict[str, str]:
    return {
        "SPREAD_BASE_URL": upstream.url + "/v1",
        "SPREAD_API_KEY": API_KEY,
        "SPREAD_HEADER_KEY": HEADER_KEY,
        "SPREAD_CATALOG_KEY": CATALOG_KEY,
        "SPREAD_TENANT_TOKEN": TENANT_TOKEN,
    }


def _write(folder: Path, port: int, catalog_url: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spread.yaml").write_text(PROVIDER.format(port=port, catalog_url=catalog_url) + extra)
    return folder


def _load(folder: Path, env: dict[str, str]) -> Provider:
    result = load_providers([str(folder)], env)
    assert not result.errors, result.problems
    return result.providers[0]


def _assert_hidden(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} shows in {where}"


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.catalog = {"data": [{"id": f"tenant-{TENANT_TOKEN}"}, {"id": "gpt-4.1"}]}
    yield server
    server.stop()


def test_which_values_are_secrets(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9400\n"
        "base_url: ${BASE_URL:-https://api.example/v1}\n"
        "headers: {x-key: 'k=${HEADER_VALUE}'}\n"
        "catalog: {url: 'https://other.example/models?key=${CATALOG_Q}'}\n"
        "mappings:\n"
        "  - {match: haiku, target: '${DEPLOYMENT}'}\n"
        "  - {match: opus, target: '${TENANT_TOKEN}'}\n"
        "wire: {dialect: openai-chat, path: '/chat?api-version=${API_VERSION}'}\n"
    )
    env = {
        "BASE_URL": "https://gw:pass-word-1@api.example/v1?sig=from-the-env-1",
        "HEADER_VALUE": "header-secret-1",
        "CATALOG_Q": "query-secret-1",
        "API_VERSION": "2024-10-21",
        "DEPLOYMENT": "my-deployment",
        "TENANT_TOKEN": "tenant-token-1",
    }
    result = load_providers([str(tmp_path)], env)
    assert not result.errors, result.problems
    secrets = set(result.providers[0].secrets)
    assert {
        "pass-word-1",
        "from-the-env-1",
        "header-secret-1",
        "query-secret-1",
        "tenant-token-1",
    } <= secrets
    # A model name, an API version or a plain URL is no secret: /v1/models must list it.
    assert not secrets & {"my-deployment", "2024-10-21", "https://api.example/v1", "api.example"}


def test_reports_logs_and_cache_never_show_a_secret(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    port = free_port()
    folder = _write(tmp_path / "providers.d", port, "/models?key=${SPREAD_CATALOG_KEY}")
    cache = tmp_path / "cache"
    upstream.reply(
        Reply(status=400, json={"error": {"message": f"bad {API_KEY} for {TENANT_TOKEN}"}})
    )
    env = {**_env(upstream), "MULTIPORT_CACHE_DIR": str(cache)}
    gateway = Gateway([str(folder), "-v"], env, [port], tmp_path)
    shown: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 5
        while httpx.get(gateway.url() + "/health", timeout=2).json()["catalog"]["source"] != "live":
            assert time.monotonic() < deadline, "the catalog was never fetched"
            time.sleep(0.05)
        for path in ("/info", "/health", "/v1/models", "/v1/models?format=openai"):
            shown[path] = httpx.get(gateway.url() + path, timeout=5).text
        body = {
            "model": "claude-x",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
        error = httpx.post(gateway.url() + "/v1/messages", json=body, timeout=5)
        shown["error body"] = error.text
    finally:
        shown["log"] = gateway.stop()
    # The secrets were used: sent upstream, and echoed back in the error.
    catalog_call = next(s for s in upstream.seen if s.path == "/v1/models")
    assert catalog_call.query == f"key={CATALOG_KEY}"
    assert upstream.seen[-1].headers["x-key"] == HEADER_KEY
    assert upstream.seen[-1].body["model"] == f"tenant-{TENANT_TOKEN}"
    assert error.status_code == 400
    for where, text in shown.items():
        _assert_hidden(text, where)
    assert "tenant-[redacted]" in shown["/v1/models"]
    assert "[redacted]" in shown["error body"]
    assert "key=[redacted]" in shown["log"]  # httpx's request line at -v, scrubbed
    cache_file = cache / "spread.json"
    _assert_hidden(cache_file.read_text(), "the cache file")
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_route_and_models_commands_never_show_a_secret(
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    folder = _write(tmp_path / "providers.d", free_port(), "/models?key=${SPREAD_CATALOG_KEY}")
    for name, value in _env(upstream).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path / "cache"))
    printed: list[str] = []
    commands = ("route", "route json", "models", "models json")
    for args in (
        ["route", "spread", "claude-sonnet-5-5"],  # the fallback list: the rule's target
        ["route", "spread", "claude-sonnet-5-5", "--format", "json"],
        ["models", "spread", "--refresh"],
        ["models", "spread", "--format", "json"],  # from the cache the refresh wrote
    ):
        assert main([*args, "--dir", str(folder)]) == 0
        out, err = capsys.readouterr()
        printed.append(out + err)
    assert any(s.query == f"key={CATALOG_KEY}" for s in upstream.seen)  # fetched with the key
    assert f"tenant-{TENANT_TOKEN}" not in "".join(printed)
    assert "target     tenant-[redacted]" in printed[0]
    assert "tenant-[redacted]" in printed[2]
    for command, text in zip(commands, printed, strict=True):
        _assert_hidden(text, command)
    _assert_hidden(caplog.text, "the log")


@pytest.mark.parametrize(
    ("catalog_on", "send_auth", "credentials_sent"),
    [("other", "", False), ("other", "  send_auth: true\n", True), ("same", "", True)],
    ids=["other-origin", "other-origin-send-auth", "same-origin"],
)
async def test_credentials_go_to_the_catalog_only_on_the_base_origin(
    upstream: ScriptedUpstream,
    tmp_path: Path,
    catalog_on: str,
    send_auth: str,
    credentials_sent: bool,
) -> None:
    other = ScriptedUpstream().start()
    try:
        catalog_url = other.url + "/models" if catalog_on == "other" else "/models"
        folder = _write(tmp_path, free_port(), catalog_url)
        text = (folder / "spread.yaml").read_text().replace("catalog:\n", f"catalog:\n{send_auth}")
        (folder / "spread.yaml").write_text(text)
        provider = _load(folder, _env(upstream))
        client = Upstream(provider, httpx.AsyncHTTPTransport())
        try:
            catalog = Catalog(provider, tmp_path / "cache")
            await asyncio.wait_for(catalog.refresh(client), 5)
        finally:
            await client.aclose()
        assert catalog.source == "live", catalog.last_error
        [seen] = (other if catalog_on == "other" else upstream).seen
    finally:
        other.stop()
    headers = {name.lower(): value for name, value in seen.headers.items()}
    assert headers["x-catalog"] == "asked-for"  # the catalog's own headers, always
    assert headers["x-title"] == "multiport-tests"  # a header with no secret in it
    if credentials_sent:
        assert headers["authorization"] == f"Bearer {API_KEY}"
        assert headers["x-key"] == HEADER_KEY
    else:
        assert "authorization" not in headers
        assert "x-key" not in headers
        _assert_hidden(json.dumps(headers), "the other origin's request")


async def test_start_up_line_hides_a_password_in_base_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="multiport")
    port = free_port()
    (tmp_path / "p.yaml").write_text(
        f"port: {port}\nbase_url: http://gw:${{SPREAD_PASS}}@127.0.0.1:9/v1\n"
    )
    provider = _load(tmp_path, {"SPREAD_PASS": "pass-in-url-0005"})
    task = asyncio.create_task(serve([provider]))
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            for _ in range(500):
                try:
                    info = (await client.get(f"http://127.0.0.1:{port}/info")).text
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.01)
            else:
                raise AssertionError("the port never listened")
        for _ in range(500):  # the start-up line follows the first answer closely
            if "http://127.0.0.1:9/v1" in caplog.text:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "http://127.0.0.1:9/v1 (openai-chat)" in caplog.text
    assert "pass-in-url-0005" not in caplog.text
    assert "pass-in-url-0005" not in info


def test_a_wire_path_cannot_change_the_host(tmp_path: Path) -> None:
    for path in ("@evil.example/v1/chat", ".evil.example/chat", "{{ model }}/chat"):
        (tmp_path / "p.yaml").write_text(
            f"port: 9400\nbase_url: https://api.example\nwire: {{dialect: openai-chat, path: '{path}'}}\n"
        )
        result = load_providers([str(tmp_path / "p.yaml")], {})
        assert not result.providers, path
        assert [p.path for p in result.errors] == ["$.wire.path"], path
        assert "must start with `/`" in result.errors[0].message
