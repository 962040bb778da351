"""`multiport serve --log-format json` in front of scripted upstreams: every line is JSON, a
routed request's line names its retries and fallbacks, and `/metrics` shows them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .gateway import Gateway
from .test_metrics import parse, value
from .upstream_server import Reply, ScriptedUpstream, Seen, chat_completion, free_ports, text_chunks

PROMPT = "a-prompt-no-log-may-show"
ASK: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": PROMPT}],
}


def _beta(seen: Seen) -> Reply:
    body: Any = seen.body
    if body.get("stream"):
        return Reply(sse=text_chunks("Hello ", "from beta.", usage=(30, 6)))
    return Reply(json=chat_completion("Hello from beta.", usage=(20, 4)))


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedUpstream, ScriptedUpstream]]:
    alpha, beta = ScriptedUpstream().start(), ScriptedUpstream().start()
    alpha.responder = lambda seen: Reply(status=503, json={"error": {"message": "busy"}})
    beta.responder = _beta
    yield alpha, beta
    alpha.stop()
    beta.stop()


@pytest.fixture
def gateway(
    upstreams: tuple[ScriptedUpstream, ScriptedUpstream], tmp_path: Path
) -> Iterator[Gateway]:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    router_port, alpha_port, beta_port = free_ports(3)
    for name, port, server in (
        ("alpha", alpha_port, upstreams[0]),
        ("beta", beta_port, upstreams[1]),
    ):
        (folder / f"{name}.yaml").write_text(
            f"port: {port}\nbase_url: {server.url}/v1\nauth:\n  value: Bearer sk-{name}-0123456789\n"
            "mappings:\n  - match: .\n    target: gpt-4.1\n"
        )
    (folder / "router.yaml").write_text(
        f"port: {router_port}\nrouter:\n  rules:\n"
        "    - to: [alpha/gpt-4.1, beta/gpt-4.1]\n"
        "  retry: {attempts: 2, backoff: 0.01, budget: 20, attempt_timeout: 5}\n"
        "  breaker: {failures: 50, cool_down: 1}\n"
    )
    env = {"MULTIPORT_CACHE_DIR": str(tmp_path)}
    gw = Gateway(
        [str(folder), "--log-format", "json"], env, [router_port, alpha_port, beta_port], tmp_path
    )
    yield gw
    gw.stop()


def _lines(log: str) -> list[dict[str, Any]]:
    """Every line of the log, each a JSON object."""
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines), log
    return lines


def test_a_routed_request_logs_its_retries_and_fallback_in_json(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url(), timeout=10) as client:
        before = parse(client.get("/metrics").text)
        plain = client.post("/v1/messages", json=ASK, headers={"x-request-id": "routed-1"})
        streamed = client.post(
            "/v1/messages", json={**ASK, "stream": True}, headers={"x-request-id": "routed-2"}
        )
        after = parse(client.get("/metrics").text)
    assert plain.status_code == streamed.status_code == 200
    assert plain.headers["x-request-id"] == "routed-1"
    log = gateway.stop()
    assert PROMPT not in log
    lines = _lines(log)
    assert any(line["message"].startswith("router") for line in lines)  # the port lines too
    requests = {
        line["request_id"]: line for line in lines if line["logger"] == "multiport.requests"
    }
    routed = requests["routed-1"]
    assert (routed["port"], routed["provider"], routed["target"]) == ("router", "beta", "gpt-4.1")
    assert (routed["status"], routed["outcome"], routed["stream"]) == (200, "ok", False)
    assert (routed["retries"], routed["fallbacks"]) == (1, 1)  # alpha twice, then beta
    assert (routed["input_tokens"], routed["output_tokens"]) == (20, 4)
    stream = requests["routed-2"]
    assert (stream["provider"], stream["stream"], stream["outcome"]) == ("beta", True, "ok")
    assert (stream["retries"], stream["fallbacks"]) == (1, 1)
    assert (stream["input_tokens"], stream["output_tokens"]) == (30, 6)
    assert 0 < stream["ttft_ms"] <= stream["latency_ms"]

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("multiport_router_retries_total", port="router") == 2
    assert moved("multiport_router_fallbacks_total", port="router") == 2
    assert moved("multiport_upstream_responses_total", provider="alpha", code="503") == 4
    assert moved("multiport_tokens_total", port="router", direction="output") == 10
    assert moved("multiport_requests_total", port="router", endpoint="messages", code="2xx") == 2
    circuit = {"port": "router", "candidate": "alpha/gpt-4.1"}
    assert value(after, "multiport_circuit_state", **circuit, state="closed") == 1
    assert value(after, "multiport_circuit_state", **circuit, state="open") == 0


def test_every_port_serves_the_same_metrics(gateway: Gateway) -> None:
    for port in gateway.ports:
        text = httpx.get(f"{gateway.url(port)}/metrics", timeout=5).text
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"multiport_requests", "multiport_circuit_state"} <= families
