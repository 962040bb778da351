"""`GET /metrics`: Prometheus text that moves with the requests a port answers."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from multiport.app import create_app
from multiport.breaker import Breaker
from multiport.metrics import exposition, watch_circuits
from multiport.router_spec import BreakerSpec

from .apps import UPSTREAM, ask, delta, provider, sse


def parse(text: str) -> dict[Any, float]:
    """Every sample of a Prometheus text, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient[Any] | httpx.Client, url: str = "/metrics") -> dict[Any, float]:
    """Every sample a port's `/metrics` shows."""
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_requests_tokens_and_errors(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(f"{UPSTREAM}/chat/completions")
    before = scrape(client)
    route.respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7},
        }
    )
    assert ask(client).status_code == 200
    route.respond(
        content=sse(
            delta(content="a"),
            delta("stop"),
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
        )
    )
    assert ask(client, stream=True).status_code == 200
    route.respond(429, json={"error": "slow down"})
    assert ask(client).status_code == 429
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("multiport_requests_total", port="p", endpoint="messages", code="2xx") == 2
    assert moved("multiport_requests_total", port="p", endpoint="messages", code="4xx") == 1
    assert (
        moved("multiport_errors_total", port="p", endpoint="messages", type="rate_limit_error") == 1
    )
    assert moved("multiport_tokens_total", port="p", direction="input") == 16
    assert moved("multiport_tokens_total", port="p", direction="output") == 9
    assert moved("multiport_upstream_responses_total", provider="p", code="200") == 2
    assert moved("multiport_upstream_responses_total", provider="p", code="429") == 1
    latency = "multiport_request_duration_seconds_count"
    assert moved(latency, port="p", endpoint="messages") == 3
    assert moved("multiport_time_to_first_token_seconds_count", port="p") == 2
    assert (
        value(
            after,
            "multiport_request_duration_seconds_bucket",
            port="p",
            endpoint="messages",
            le="300.0",
        )
        >= 3
    )


def test_no_client_model_name_becomes_a_label(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(503, json={})
    ask(client, model="claude-unlikely-name-4242")
    text = client.get("/metrics").text
    assert "claude-unlikely-name-4242" not in text


@pytest.mark.parametrize(("status", "result"), [(200, "ok"), (500, "failed")])
def test_catalog_refreshes_are_counted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    respx_mock: respx.MockRouter,
    status: int,
    result: str,
) -> None:
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path))
    models = respx_mock.get(f"{UPSTREAM}/models").respond(status, json={"data": [{"id": "m"}]})
    app = create_app(
        provider(tmp_path, "catalog:\n  url: /models\n  refresh: 0\n"),
        transport=httpx.AsyncHTTPTransport(),
    )
    name, labels = "multiport_catalog_refreshes_total", {"provider": "p", "result": result}
    before = value(parse(exposition()[0].decode()), name, **labels)
    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while value(scrape(client), name, **labels) == before:
            assert time.monotonic() < deadline, "the refresh was never counted"
            time.sleep(0.01)
    assert models.call_count == 1


def test_a_router_gone_leaves_no_circuit_series() -> None:
    breaker = Breaker(BreakerSpec())
    watch_circuits("gone-router", breaker, ["a/b"])
    labels = {"port": "gone-router", "candidate": "a/b", "state": "closed"}
    assert value(parse(exposition()[0].decode()), "multiport_circuit_state", **labels) == 1
    del breaker
    gc.collect()
    assert "gone-router" not in exposition()[0].decode()
