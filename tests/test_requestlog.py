"""The request log: one line per request, its fields, and the request id a client gives."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.logformat import JsonFormatter
from multiport.requestlog import request_id_for

from .apps import UPSTREAM, delta, provider, sse
from .stream_checker import check_stream, parse_sse

PROMPT = "the-secret-plan-of-the-user"


def _ask(client: TestClient[Any], *, request_id: str | None = None, **extra: Any) -> httpx.Response:
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
        **extra,
    }
    headers = {"x-request-id": request_id} if request_id is not None else {}
    return client.post("/v1/messages", json=body, headers=headers)


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The request lines written, as their JSON fields."""
    records = [r for r in caplog.records if r.name == "multiport.requests"]
    for record in records:
        assert PROMPT not in record.getMessage()
    return [json.loads(JsonFormatter().format(r)) for r in records]


def _answer(prompt: int, completion: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": "ok"}
    return {
        "choices": [{"message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="multiport.requests")
    return caplog


def test_a_complete_answer_is_one_line_with_its_model_tokens_and_times(
    client: TestClient[Any], respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json=_answer(11, 7))
    response = _ask(client, request_id="trace-123")
    assert response.status_code == 200
    assert response.headers["request-id"] == response.headers["x-request-id"] == "trace-123"
    [line] = _lines(logged)
    assert line["logger"] == "multiport.requests"
    assert {k: line[k] for k in ("request_id", "endpoint", "port", "provider")} == {
        "request_id": "trace-123",
        "endpoint": "messages",
        "port": "p",
        "provider": "p",
    }
    assert (line["model"], line["target"], line["stream"]) == (
        "claude-sonnet-5-5",
        "big-model",
        False,
    )
    assert (line["status"], line["outcome"], line["upstream_status"]) == (200, "ok", 200)
    assert (line["input_tokens"], line["output_tokens"]) == (11, 7)
    assert (line["retries"], line["fallbacks"]) == (0, 0)
    assert line["ttft_ms"] == line["latency_ms"] > 0
    text = logged.records[-1].getMessage()
    assert "request_id=trace-123 endpoint=messages port=p" in text
    assert "model=claude-sonnet-5-5 target=big-model" in text
    assert "input_tokens=11 output_tokens=7" in text


def test_a_stream_is_logged_when_it_ends_with_its_usage_and_first_token(
    client: TestClient[Any], respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    chunks = sse(
        delta(role="assistant", content="Hel"),
        delta(content="lo"),
        delta("stop"),
        {"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 4}},
        b"[DONE]",
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=chunks)
    response = _ask(client, stream=True)
    check_stream(parse_sse(response.content))
    [line] = _lines(logged)
    assert line["request_id"] == response.headers["request-id"]
    assert line["request_id"].startswith("req_")
    assert (line["stream"], line["status"], line["outcome"]) == (True, 200, "ok")
    assert (line["input_tokens"], line["output_tokens"]) == (21, 4)
    assert 0 < line["ttft_ms"] <= line["latency_ms"]


def test_a_stream_that_fails_midway_is_logged_with_its_error(
    client: TestClient[Any], respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    cut = sse(delta(role="assistant", content="Hel"))  # no finish reason
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=cut)
    response = _ask(client, stream=True)
    assert parse_sse(response.content)[-1][0] == "error"
    [line] = _lines(logged)
    assert (line["stream"], line["status"], line["outcome"]) == (True, 200, "api_error")
    assert line["ttft_ms"] is not None  # the first text came before the failure


def test_an_upstream_error_is_logged_and_its_body_carries_the_clients_id(
    client: TestClient[Any], respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(503, json={"error": "busy"})
    response = _ask(client, request_id="trace-503")
    assert response.status_code == 503
    assert response.json()["request_id"] == "trace-503"
    assert response.headers["request-id"] == response.headers["x-request-id"] == "trace-503"
    [line] = _lines(logged)
    assert line["request_id"] == "trace-503"
    assert (line["status"], line["outcome"], line["upstream_status"]) == (
        503,
        "overloaded_error",
        503,
    )
    assert line["ttft_ms"] is None
    assert (line["input_tokens"], line["output_tokens"]) == (0, 0)


def test_a_template_failure_is_logged_the_same_way(
    tmp_path: Path, respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    template = "wire:\n  dialect: openai-chat\n  response: |\n    {{ 1 / 0 }}\n"
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json=_answer(1, 1))
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        response = _ask(client)
    assert response.status_code == 502
    [line] = _lines(logged)
    assert (line["status"], line["outcome"], line["target"]) == (502, "api_error", "big-model")
    assert line["request_id"] == response.json()["request_id"]


def test_a_request_refused_before_the_upstream_is_logged(
    client: TestClient[Any], logged: pytest.LogCaptureFixture
) -> None:
    response = client.post(
        "/v1/messages", content=b"{not json", headers={"x-request-id": "trace-bad"}
    )
    assert response.status_code == 400
    assert response.json()["request_id"] == "trace-bad"
    [line] = _lines(logged)
    assert (line["status"], line["outcome"], line["model"]) == (400, "invalid_request_error", None)


def test_count_tokens_is_logged_and_echoes_the_id(
    client: TestClient[Any], logged: pytest.LogCaptureFixture
) -> None:
    body = {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": PROMPT}]}
    response = client.post(
        "/v1/messages/count_tokens", json=body, headers={"x-request-id": "trace-count"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-count"
    [line] = _lines(logged)
    assert (line["endpoint"], line["status"], line["request_id"]) == (
        "count_tokens",
        200,
        "trace-count",
    )


def test_other_routes_write_no_request_line(
    client: TestClient[Any], logged: pytest.LogCaptureFixture
) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/nowhere").status_code == 404
    assert _lines(logged) == []


@pytest.mark.parametrize(
    "given", ["", "has space", "x" * 129, "tab\there", "ünïcode", "line\nbreak"]
)
def test_an_unfit_request_id_is_replaced(given: str) -> None:
    made = request_id_for(given)
    assert made != given
    assert made.startswith("req_")


@pytest.mark.parametrize("given", ["a", "trace-123", "x" * 128, "00-4bf92f3577b34da6-01"])
def test_a_fit_request_id_is_kept(given: str) -> None:
    assert request_id_for(given) == given


def test_an_unfit_request_id_from_a_client_is_not_echoed(
    client: TestClient[Any], respx_mock: respx.MockRouter, logged: pytest.LogCaptureFixture
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json=_answer(1, 1))
    response = _ask(client, request_id="x" * 200)
    assert response.headers["x-request-id"].startswith("req_")
    [line] = _lines(logged)
    assert line["request_id"] == response.headers["x-request-id"]


def test_json_lines_carry_time_level_logger_and_message() -> None:
    record = logging.LogRecord("multiport", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "multiport"
    assert line["message"] == "a b"
    assert line["time"].endswith("Z")
