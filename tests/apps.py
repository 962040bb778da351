"""A provider app in process for tests: Litestar's test client in front, respx upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import respx
from litestar import Litestar
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.provider import Provider

from .stream_checker import parse_sse

UPSTREAM = "http://upstream.test/v1"
SECRET = "sk-pipeline-secret-0123456789"
PROVIDER = f"""\
port: 9400
base_url: {UPSTREAM}
auth:
  value: Bearer ${{PIPELINE_KEY:-{SECRET}}}
mappings:
  - match: ^claude-
    target: big-model
"""
TOOLS = [{"name": "f", "description": "", "input_schema": {"type": "object"}}]


def provider(tmp_path: Path, extra: str = "") -> Provider:
    (tmp_path / "p.yaml").write_text(PROVIDER + extra)
    result = load_providers([str(tmp_path / "p.yaml")], {})
    assert not result.errors, result.problems
    return result.providers[0]


def ask(client: TestClient[Any], **extra: Any) -> httpx.Response:
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    return client.post("/v1/messages", json=body)


def sse(*chunks: Any) -> bytes:
    return b"".join(
        b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n"
        for c in chunks
    )


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


def stream_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    assert response.status_code == 200, response.text
    return parse_sse(response.content)


def sent_body(respx_mock: respx.MockRouter) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(respx_mock.calls.last.request.content)
    return body


def answer_ok(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ]
        }
    )


ANTHROPIC = "http://anthropic.test"


def anthropic_app(
    tmp_path: Path,
    *,
    auth: str = "  header: x-api-key\n  value: key-0123456789\n",
    mappings: str = "  - match: ^claude-.*\n    target: \\g<0>\n",
    options: str = "",
) -> Litestar:
    """An app for a provider on the `anthropic` dialect, its upstream mocked by respx."""
    (tmp_path / "a.yaml").write_text(
        f"port: 9401\nbase_url: {ANTHROPIC}\nwire:\n  dialect: anthropic\n"
        f"auth:\n{auth}mappings:\n{mappings}{options}"
    )
    result = load_providers([str(tmp_path / "a.yaml")], {})
    assert not result.errors, result.problems
    return create_app(result.providers[0], transport=httpx.AsyncHTTPTransport())
