"""Who may use a port: `access.keys` on provider and router ports, their `validate` checks,
and the refusal to serve an open port beyond loopback."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import LoadResult, load_providers
from multiport.router_app import create_router_app

from .apps import PROVIDER, UPSTREAM, answer_ok
from .gateway import Gateway
from .upstream_server import free_ports

KEY = "team-key-0123456789abcdef"
OTHER_KEY = "second-key-0123456789abcdef"
ENV = {"TEAM_KEY": KEY, "SECOND_CLIENT": OTHER_KEY}  # a name that says no "key"
ACCESS = 'access:\n  keys: ["${TEAM_KEY}", "${SECOND_CLIENT}"]\n'
ROUTER = "port: 9402\n" + ACCESS + "router:\n  rules:\n    - to: [p/big-model]\n"
BODY = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}
REFUSED = "this port needs a key: send x-api-key or Authorization: Bearer; set by access.keys in"


def _load(folder: Path, env: dict[str, str] | None = None) -> LoadResult:
    return load_providers([str(folder)], ENV if env is None else env)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(PROVIDER + ACCESS)
    (tmp_path / "r.yaml").write_text(ROUTER)
    return tmp_path


@pytest.fixture
def apps(folder: Path) -> Iterator[dict[str, TestClient[Litestar]]]:
    """The provider's port and the router's, in process, both with keys."""
    result = _load(folder)
    assert not result.errors, result.problems
    provider_app = create_app(result.providers[0], transport=httpx.AsyncHTTPTransport())
    router_app = create_router_app(result.routers[0], {"p": provider_app.state.engine})
    with TestClient(provider_app) as provider, TestClient(router_app) as router:
        yield {"provider": provider, "router": router}


def _carrying(key: str, header: str) -> dict[str, str]:
    return {"x-api-key": key} if header == "x-api-key" else {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("port", ["provider", "router"])
@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
def test_a_right_key_in_either_header_is_let_in(
    apps: dict[str, TestClient[Litestar]], respx_mock: respx.MockRouter, port: str, header: str
) -> None:
    answer_ok(respx_mock)
    for key in (KEY, OTHER_KEY):
        response = apps[port].post("/v1/messages", json=BODY, headers=_carrying(key, header))
        assert response.status_code == 200, response.text
        assert response.json()["content"] == [{"type": "text", "text": "ok"}]
    # The gateway's key stays here: the upstream gets the provider's own credentials.
    sent = respx_mock.calls.last.request.headers
    assert "x-api-key" not in sent
    assert sent["authorization"] == "Bearer sk-pipeline-secret-0123456789"


@pytest.mark.parametrize("port", ["provider", "router"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "wrong-key-0123456789abcdef"},
        {"authorization": "Bearer wrong-key-0123456789abcdef"},
        {"authorization": f"Basic {KEY}"},  # only a bearer token counts
        {"x-api-key": KEY[:-1]},
        {"x-api-key": KEY + "x"},
    ],
)
def test_a_missing_or_wrong_key_is_refused_without_echo(
    apps: dict[str, TestClient[Litestar]], port: str, headers: dict[str, str]
) -> None:
    for method, path in (("POST", "/v1/messages"), ("GET", "/v1/models"), ("GET", "/info")):
        response = apps[port].request(method, path, json=BODY, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "authentication_error"
        assert error["error"]["message"].startswith(REFUSED)
        assert error["error"]["message"].endswith(".yaml")
        assert "key-0123456789" not in response.text


@pytest.mark.parametrize("port", ["provider", "router"])
def test_health_and_the_head_probe_need_no_key(
    apps: dict[str, TestClient[Litestar]], port: str
) -> None:
    assert apps[port].get("/health").status_code == 200
    assert apps[port].head("/").status_code == 200
    assert apps[port].get("/").status_code == 401


def test_a_port_without_keys_lets_anyone_in(tmp_path: Path, respx_mock: respx.MockRouter) -> None:
    (tmp_path / "p.yaml").write_text(PROVIDER)
    app = create_app(_load(tmp_path).providers[0], transport=httpx.AsyncHTTPTransport())
    answer_ok(respx_mock)
    with TestClient(app) as client:
        assert client.post("/v1/messages", json=BODY).status_code == 200


def test_keys_come_from_the_folder_defaults(tmp_path: Path) -> None:
    (tmp_path / "_defaults.yaml").write_text(ACCESS)
    (tmp_path / "p.yaml").write_text(PROVIDER)
    result = _load(tmp_path)
    assert not result.problems, result.problems
    assert result.providers[0].spec.access.keys == [KEY, OTHER_KEY]
    with TestClient(create_app(result.providers[0])) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"x-api-key": KEY}).status_code == 200


def test_every_key_is_a_secret_scrubbed_from_bodies_and_logs(
    apps: dict[str, TestClient[Litestar]],
    respx_mock: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An upstream error that repeats a key the client did not send: only the file's
    # secrets can remove it.
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        500, json={"error": {"message": f"keys {OTHER_KEY} and {KEY} are not ours"}}
    )
    with caplog.at_level(logging.INFO):
        for port in ("provider", "router"):
            response = apps[port].post("/v1/messages", json=BODY, headers={"x-api-key": KEY})
            assert response.status_code >= 500, response.text
            assert "[redacted]" in response.text
            assert OTHER_KEY not in response.text
            assert KEY not in response.text
    assert "[redacted]" in caplog.text
    assert OTHER_KEY not in caplog.text
    assert KEY not in caplog.text


def _problems(folder: Path, env: dict[str, str] | None = None) -> list[str]:
    return [str(p) for p in _load(folder, env).errors]


def test_a_key_written_in_the_file_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        PROVIDER + 'access:\n  keys:\n    - "${TEAM_KEY}"\n    - literal-key-0123456789\n'
    )
    errors = _problems(tmp_path)
    line = len(PROVIDER.splitlines()) + 4
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{tmp_path / 'p.yaml'}:{line}:7: error: a key written in the file")
    assert "literal-key" not in errors[0]
    assert errors[0].endswith("(at $.access.keys[1])")
    assert _load(tmp_path).providers == []  # never served


def test_a_literal_key_in_the_folder_defaults_is_an_error_there(tmp_path: Path) -> None:
    (tmp_path / "_defaults.yaml").write_text("access:\n  keys: [literal-key-0123456789]\n")
    (tmp_path / "p.yaml").write_text(PROVIDER)
    errors = _problems(tmp_path)
    assert errors == [
        f"{tmp_path / '_defaults.yaml'}:2:10: error: a key written in the file is readable by "
        'anyone who reads the file: write `"${TEAM_GATEWAY_KEY}"` and set that variable (or '
        "put it in env_file) (at $.access.keys[0])"
    ]


@pytest.mark.parametrize(
    ("keys", "env", "says"),
    [
        ('["${TEAM_KEY}"]', {}, "environment variable TEAM_KEY is not set"),
        ('["${TEAM_KEY:-default-key-0123456789}"]', {}, "a default written in the file"),
        ('["${TEAM_KEY}"]', {"TEAM_KEY": "short-key"}, "at least 16 printable ASCII"),
        ('["${TEAM_KEY}"]', {"TEAM_KEY": "two words 0123456789"}, "without spaces"),
    ],
)
def test_a_key_must_be_set_long_and_one_word(
    tmp_path: Path, keys: str, env: dict[str, str], says: str
) -> None:
    (tmp_path / "p.yaml").write_text(PROVIDER + f"access:\n  keys: {keys}\n")
    errors = _problems(tmp_path, env)
    assert len(errors) == 1, errors
    assert says in errors[0]
    assert "(at $.access.keys[0])" in errors[0]


PASSTHROUGH = PROVIDER.replace("auth:\n", "auth:\n  passthrough: true\n", 1)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (PASSTHROUGH, "$.auth.passthrough"),
        (
            PROVIDER + "options:\n  forward_headers: [anthropic-beta, X-Api-Key]\n",
            "$.options.forward_headers[1]",
        ),
        (
            PROVIDER + "options:\n  forward_headers: [authorization]\n",
            "$.options.forward_headers[0]",
        ),
    ],
)
def test_nothing_may_send_the_gateway_key_upstream(tmp_path: Path, text: str, path: str) -> None:
    (tmp_path / "p.yaml").write_text(text + ACCESS)
    errors = _problems(tmp_path)
    assert len(errors) == 1, errors
    assert errors[0].endswith(f"(at {path})")
    (tmp_path / "p.yaml").write_text(text)  # without keys, the same file is fine
    assert _problems(tmp_path) == []


def _serve(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiport", "serve", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **ENV},
        check=False,
    )


def _open_folder(tmp_path: Path, port: int, extra: str = "") -> Path:
    folder = tmp_path / "providers.d"
    folder.mkdir(exist_ok=True)
    closed = free_ports(1)[0]  # the upstream: nothing listens there
    text = PROVIDER.replace("port: 9400", f"port: {port}\nhost: 0.0.0.0")
    text = text.replace(UPSTREAM, f"http://127.0.0.1:{closed}/v1")
    (folder / "p.yaml").write_text(text + extra)
    return folder


def test_serve_refuses_an_open_port_beyond_loopback(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    done = _serve(_open_folder(tmp_path, port))
    assert done.returncode == 1, done.stderr
    assert f"refusing to serve p on 0.0.0.0:{port}" in done.stderr
    assert "has no access.keys" in done.stderr
    assert "--allow-open" in done.stderr


def _gateway(folder: Path, port: int, *args: str) -> Gateway:
    return Gateway(
        [str(folder), *args], {**ENV, "MULTIPORT_CACHE_DIR": str(folder)}, [port], folder
    )


def test_allow_open_serves_and_warns(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    gateway = _gateway(_open_folder(tmp_path, port), port, "--allow-open")
    try:
        assert httpx.get(f"{gateway.url()}/v1/models", timeout=5).status_code == 200
    finally:
        log = gateway.stop()
    assert f"WARNING: p on 0.0.0.0:{port} is OPEN to anyone" in log


def test_keys_let_a_port_listen_beyond_loopback_and_stay_out_of_the_log(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    gateway = _gateway(_open_folder(tmp_path, port, ACCESS), port, "-v")
    try:
        url = f"{gateway.url()}/v1/messages"
        refused = httpx.post(url, json=BODY, headers={"x-api-key": "wrong-0123456789abcdef"})
        assert refused.status_code == 401
        # Let in, then failing upstream (nothing listens there): logged.
        let_in = httpx.post(url, json=BODY, headers={"authorization": f"Bearer {KEY}"}, timeout=20)
        assert let_in.status_code in (502, 504), let_in.text
        assert KEY not in let_in.text
    finally:
        log = gateway.stop()
    assert "OPEN" not in log
    assert "POST /v1/messages" in log  # the request log was written
    assert KEY not in log
    assert "wrong-0123456789abcdef" not in log
