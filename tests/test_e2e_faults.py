"""Upstream failures reach the client as the right Anthropic error, never as a fake
success, and never as a traceback in the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from .gateway import Gateway
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, free_ports, text_chunks

PROVIDER = """\
port: {port}
base_url: {base}
auth:
  value: Bearer ${{FAULT_KEY}}
timeouts: {{connect: 2, first_byte: 1.5, read: 1.5}}
mappings:
  - match: .
    target: gpt-4.1
options:
  ping_interval: 0.3
"""


class FaultGateway(Gateway):
    """Three ports, in order: the faulty provider, one whose upstream refuses connections,
    and one whose credential variable is unset."""

    @property
    def nokey_port(self) -> int:
        return self.ports[2]


@pytest.fixture(scope="module")
def gateway(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultGateway]:
    tmp = tmp_path_factory.mktemp("faults")
    providers = tmp / "providers.d"
    providers.mkdir()
    port, dead_port, refused, nokey_port = free_ports(4)
    (providers / "faulty.yaml").write_text(PROVIDER.format(port=port, base=upstream.url + "/v1"))
    (providers / "refused.yaml").write_text(
        PROVIDER.format(port=dead_port, base=f"http://127.0.0.1:{refused}/v1")
    )
    (providers / "nokey.yaml").write_text(
        PROVIDER.format(port=nokey_port, base=upstream.url + "/v1").replace(
            "FAULT_KEY", "NOKEY_SECRET_KEY"
        )
    )
    env = {"FAULT_KEY": "sk-fault-secret-123", "MULTIPORT_CACHE_DIR": str(tmp / "cache")}
    gw = FaultGateway([str(providers)], env, [port, dead_port, nokey_port], tmp)
    yield gw
    log = gw.stop()
    assert "Traceback" not in log, log
    assert "sk-fault-secret-123" not in log, log


STREAM_BODY = {
    "model": "m",
    "max_tokens": 5,
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


def _stream_events(gateway: Gateway) -> list[tuple[str, dict[str, Any]]]:
    with httpx.stream(
        "POST", gateway.url() + "/v1/messages", json=STREAM_BODY, timeout=20
    ) as response:
        assert response.status_code == 200
        return parse_sse(response.read())


def _client(gateway: Gateway, port: int | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url(port), api_key="k", max_retries=0, timeout=20)


def _ask(client: anthropic.Anthropic) -> None:
    """One request; the client is closed after it, whatever the answer."""
    with client:
        client.messages.create(
            model="claude-haiku-5-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    ("status", "exc_type", "error_type"),
    [
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_upstream_status_is_mapped(
    gateway: Gateway,
    upstream: ScriptedUpstream,
    status: int,
    exc_type: type[Exception],
    error_type: str,
) -> None:
    upstream.reset()
    upstream.reply(
        Reply(
            status=status,
            json={"error": {"message": f"upstream says {status} sk-fault-secret-123"}},
            headers={"retry-after": "7"},
        )
    )
    with pytest.raises(exc_type) as exc:
        _ask(_client(gateway))
    error = exc.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status
    assert isinstance(error.body, dict)
    assert error.body["error"]["type"] == error_type
    assert f"upstream says {status}" in error.body["error"]["message"]
    assert "sk-fault-secret-123" not in str(error.body)
    assert error.response.headers.get("request-id", "").startswith("req_")
    if status == 429:
        assert error.response.headers["retry-after"] == "7"


def test_streaming_request_gets_real_status_before_stream(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.reset()
    upstream.reply(Reply(status=429, json={"error": {"message": "slow down"}}))
    response = httpx.post(
        gateway.url() + "/v1/messages",
        json={
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=10,
    )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_refused_connection_is_502(gateway: Gateway) -> None:
    with pytest.raises(anthropic.APIStatusError) as exc:
        _ask(_client(gateway, gateway.ports[1]))
    assert exc.value.status_code == 502
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["error"]["type"] == "api_error"
    assert "cannot reach the upstream" in exc.value.body["error"]["message"]


def test_hang_is_504_timeout(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(Reply(hang=True))
    with pytest.raises(anthropic.APIStatusError) as exc:
        _ask(_client(gateway))
    assert exc.value.status_code == 504
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["error"]["type"] == "timeout_error"


def test_missing_credentials_is_401_naming_the_variable(gateway: FaultGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as exc:
        _ask(_client(gateway, gateway.nokey_port))
    assert isinstance(exc.value.body, dict)
    assert "NOKEY_SECRET_KEY" in exc.value.body["error"]["message"]
    health = httpx.get(gateway.url(gateway.nokey_port) + "/health", timeout=5).json()
    assert health["ready"] is False
    assert health["credentials"]["missing"] == ["NOKEY_SECRET_KEY"]


def test_truncated_stream_ends_in_error_event(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    chunks = text_chunks("partial")
    upstream.reply(Reply(sse=chunks[:2]))  # no finish_reason, no [DONE]
    events = _stream_events(gateway)
    check_stream(events, expect_error=True)
    assert events[-1][1]["error"]["type"] == "api_error"


def test_in_band_error_chunk_is_error_event(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(
        Reply(
            sse=[
                {"choices": [{"index": 0, "delta": {"content": "a"}}]},
                {"error": {"message": "model overloaded"}},
            ]
        )
    )
    events = _stream_events(gateway)
    check_stream(events, expect_error=True)
    assert "model overloaded" in events[-1][1]["error"]["message"]


def test_silence_mid_stream_sends_pings_then_times_out(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.reset()
    first = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    # Silent for longer than the provider's read timeout (1.5 s) after the first chunk.
    upstream.reply(Reply(raw=[first, first], gap=3.0))
    events = _stream_events(gateway)
    check_stream(events, expect_error=True)
    assert any(name == "ping" for name, _ in events)
    assert events[-1][1]["error"]["type"] == "timeout_error"


def test_slow_stream_gets_pings(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(Reply(sse=text_chunks("la", "te"), gap=0.5))
    events = _stream_events(gateway)
    message = check_stream(events)
    assert message["content"][0]["text"] == "late"
    assert any(name == "ping" for name, _ in events)


def test_log_has_no_traceback_so_far(gateway: Gateway) -> None:
    assert "Traceback" not in gateway.log()
    assert Path(gateway.log_path).exists()


def test_client_leaving_cancels_the_upstream_call(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.reset()
    upstream.client_gone = 0
    upstream.reply(Reply(sse=text_chunks(*[f"w{i} " for i in range(60)]), gap=0.1))
    with httpx.stream(
        "POST", gateway.url() + "/v1/messages", json=STREAM_BODY, timeout=10
    ) as response:
        for line in response.iter_lines():
            if "text_delta" in line:
                break  # the client leaves after the first delta
    deadline = time.monotonic() + 5
    while upstream.client_gone == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.client_gone == 1


def test_every_request_was_acceptable_to_a_strict_upstream(upstream: ScriptedUpstream) -> None:
    assert upstream.refused == []
