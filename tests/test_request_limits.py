"""A request's decoded size is bounded: blocks, tools and model name each refused with a
400 that says which limit; huge requests neither exhaust memory nor stall other ports."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers

from .apps import UPSTREAM, ask, provider
from .gateway import Gateway
from .upstream_server import Reply, ScriptedUpstream, chat_completion, free_ports

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
SMALL = "limits: {blocks: 5, tools: 2, model_chars: 40}\n"


@pytest.fixture
def small(tmp_path: Path) -> Any:
    app = create_app(provider(tmp_path, SMALL), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        yield client


def _error(answer: httpx.Response) -> tuple[int, str, str]:
    error = answer.json()["error"]
    return answer.status_code, error["type"], error["message"]


@respx.mock(assert_all_called=False)
def test_too_many_blocks_is_a_400_naming_the_limit(small: TestClient[Any]) -> None:
    route = respx.post(UPSTREAM + "/chat/completions")
    content = [{"type": "text", "text": str(i)} for i in range(6)]
    status, kind, message = _error(ask(small, messages=[{"role": "user", "content": content}]))
    assert (status, kind) == (400, "invalid_request_error")
    assert "6 content blocks" in message
    assert "limits.blocks" in message
    assert not route.called


@respx.mock(assert_all_called=False)
def test_blocks_inside_tool_results_count(small: TestClient[Any]) -> None:
    respx.post(UPSTREAM + "/chat/completions")
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": "x"}] * 5,
    }
    use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    status, _, message = _error(ask(small, messages=messages))
    assert status == 400
    assert "8 content blocks" in message


@respx.mock(assert_all_called=False)
def test_too_many_tools_is_a_400(small: TestClient[Any]) -> None:
    respx.post(UPSTREAM + "/chat/completions")
    tools = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(3)]
    status, kind, message = _error(ask(small, tools=tools))
    assert (status, kind) == (400, "invalid_request_error")
    assert "3 tools" in message
    assert "limits.tools" in message


@respx.mock(assert_all_called=False)
def test_a_long_model_name_is_a_400(small: TestClient[Any]) -> None:
    respx.post(UPSTREAM + "/chat/completions")
    status, kind, message = _error(ask(small, model="claude-" + "a" * 50))
    assert (status, kind) == (400, "invalid_request_error")
    assert "limits.model_chars" in message


def test_a_folder_default_applies_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    (tmp_path / "_defaults.yaml").write_text(
        "limits: {tools: 7, blocks: 9}\ntimeouts: {first_byte: 30}\n"
    )
    base = "base_url: http://127.0.0.1:1/v1\nmappings: [{match: ., target: x}]\n"
    (tmp_path / "a.yaml").write_text("port: 9401\n" + base)
    (tmp_path / "b.yaml").write_text("port: 9402\n" + base + "limits: {tools: 3}\n")
    result = load_providers([str(tmp_path)], {})
    assert not result.problems, result.problems
    a, b = sorted(result.providers, key=lambda p: p.name)
    assert (a.spec.limits.tools, a.spec.limits.blocks) == (7, 9)
    assert (b.spec.limits.tools, b.spec.limits.blocks) == (3, 9)
    assert b.spec.timeouts.first_byte == 30
    assert b.spec.limits.connections == 1024  # built-in default


def test_a_wrong_default_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "_defaults.yaml").write_text("limits:\n  tools: -1\n")
    (tmp_path / "a.yaml").write_text("port: 9401\nbase_url: http://127.0.0.1:1/v1\n")
    result = load_providers([str(tmp_path)], {})
    (problem,) = result.errors
    assert problem.file.endswith("_defaults.yaml")
    assert (problem.line, problem.path) == (2, "$.limits.tools")


# In a real process: memory and the loop.

PROVIDERS = """\
port: {port}
base_url: http://127.0.0.1:{dead}/v1
auth: {{value: Bearer x-secret-value}}
mappings: [{{match: ., target: gpt-4.1}}]
"""


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _tiny_blocks(size: int) -> bytes:
    block = b'{"type":"text","text":""}'
    count = size // (len(block) + 1)
    return (
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":['
        + b",".join([block] * count)
        + b"]}]}"
    )


def test_huge_requests_are_bounded_in_memory_and_leave_the_loop_free(tmp_path: Path) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    port, other, dead = free_ports(3)
    (folder / "a.yaml").write_text(PROVIDERS.format(port=port, dead=dead))
    (folder / "b.yaml").write_text(PROVIDERS.format(port=other, dead=dead))
    gateway = Gateway([str(folder)], {}, [port, other], tmp_path)
    try:
        base = _peak_rss_mb(gateway.process.pid)
        body = _tiny_blocks(31 << 20)  # just under the 32 MiB default: 1.2 million blocks
        tools = json.dumps(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(100_000)
                ],
            }
        ).encode()
        url = f"http://127.0.0.1:{port}/v1/messages"
        slowest = 0.0
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            sent = [
                pool.submit(httpx.post, url, content=b, timeout=60) for b in [body] * 4 + [tools]
            ]
            while not all(f.done() for f in sent):
                started = time.monotonic()
                assert httpx.get(f"http://127.0.0.1:{other}/health", timeout=5).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.05)
            answers = [f.result() for f in sent]
        for answer in answers[:4]:
            assert answer.status_code == 400
            assert "limits.blocks" in answer.json()["error"]["message"]
        assert answers[4].status_code == 400
        assert "limits.tools" in answers[4].json()["error"]["message"]
        assert slowest < 1.0  # the other port kept answering
        grown = _peak_rss_mb(gateway.process.pid) - base
        print(f"4 × 31 MiB of tiny blocks and 100,000 tools: peak RSS +{grown:.0f} MB")
        assert grown < 600
    finally:
        gateway.stop()


def test_an_answer_of_many_tool_calls_leaves_the_loop_free(tmp_path: Path) -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in range(60_000)
    ]
    answer = chat_completion(None, tool_calls=calls, finish="tool_calls")
    upstream = ScriptedUpstream().start()
    upstream.strict = False
    upstream.responder = lambda seen: Reply(json=answer)
    folder = tmp_path / "providers.d"
    folder.mkdir()
    port, other = free_ports(2)
    base = upstream.url.removeprefix("http://127.0.0.1:")
    for name, number in (("a", port), ("b", other)):
        (folder / f"{name}.yaml").write_text(
            PROVIDERS.format(port=number, dead=base).replace("x-secret-value", "k")
        )
    gateway = Gateway([str(folder)], {}, [port, other], tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            sent = [
                pool.submit(
                    httpx.post, f"http://127.0.0.1:{port}/v1/messages", json=BODY, timeout=60
                )
                for _ in range(2)
            ]
            slowest = 0.0
            while not all(f.done() for f in sent):
                started = time.monotonic()
                assert httpx.get(f"http://127.0.0.1:{other}/health", timeout=5).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.05)
        for future in sent:
            assert future.result().status_code == 200
            assert len(future.result().json()["content"]) == 60_000
        assert slowest < 1.0
    finally:
        gateway.stop()
        upstream.stop()
