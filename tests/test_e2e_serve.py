"""`multiport serve` over copies of the shipped providers.d (each on a free ephemeral port),
and the Ollama native-format provider."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from .conftest import PROVIDERS_DIR
from .gateway import Gateway, provider_copy, providers_copy
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, free_ports


def test_every_shipped_provider_comes_up_without_network(tmp_path: Path) -> None:
    providers, ports = providers_copy(tmp_path)
    shipped = sorted(p.stem for p in PROVIDERS_DIR.glob("*.yaml"))
    assert sorted(ports) == shipped
    # Unroutable catalogs: nothing may wait for them.
    env = {
        "MULTIPORT_CACHE_DIR": str(tmp_path),
        "OLLAMA_BASE_URL": "http://127.0.0.1:9",
        "LLAMACPP_BASE_URL": "http://127.0.0.1:9/v1",
    }
    gateway = Gateway([str(providers)], env, list(ports.values()), tmp_path)
    try:
        print(f"all {len(ports)} ports answered /health {gateway.ready_after:.2f}s after start")
        for name, port in ports.items():
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            assert health["provider"] == name
            assert health["status"] == "ok"
        deadline = time.monotonic() + 5
        while "gemini " not in gateway.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = gateway.log()
        for name, port in ports.items():
            assert re.search(rf"{re.escape(name)}\s+http://127\.0\.0\.1:{port} → ", log), log
    finally:
        log = gateway.stop()
    assert "Traceback" not in log
    assert gateway.process.returncode == 0


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.catalog = {"models": [{"name": "llama3.2:latest", "details": {"family": "llama"}}]}
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ollama(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("ollama")
    providers, port = provider_copy("ollama", tmp)
    env = {
        "OLLAMA_BASE_URL": upstream.url,
        "OLLAMA_MODEL": "llama3.2:latest",
        "MULTIPORT_CACHE_DIR": str(tmp),
    }
    gateway = Gateway([str(providers.parent), "--only", "ollama"], env, [port], tmp)
    yield gateway
    assert "Traceback" not in gateway.stop()


def _ndjson(*pieces: str, tool: dict[str, object] | None = None) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = [
        {"model": "llama3.2", "message": {"role": "assistant", "content": p}, "done": False}
        for p in pieces
    ]
    if tool:
        lines.append(
            {
                "model": "llama3.2",
                "message": {"role": "assistant", "content": "", "tool_calls": [{"function": tool}]},
                "done": False,
            }
        )
    lines.append(
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 17,
            "eval_count": 6,
        }
    )
    return lines


def test_ollama_streams_ndjson_as_anthropic(ollama: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(Reply(ndjson=_ndjson("Hel", "lo ", "there")))
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 40,
        "stream": True,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with httpx.stream("POST", ollama.url() + "/v1/messages", json=body, timeout=10) as response:
        assert response.status_code == 200
        message = check_stream(parse_sse(response.read()))
    assert message["content"] == [{"type": "text", "text": "Hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 6
    sent = upstream.seen[-1]
    assert sent.path == "/api/chat"
    assert sent.body["model"] == "llama3.2:latest"
    assert sent.body["stream"] is True
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent.body["options"]["num_predict"] == 40


def test_ollama_tool_call_with_stop_is_tool_use(
    ollama: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.reset()
    upstream.reply(
        Reply(ndjson=_ndjson(tool={"name": "get_weather", "arguments": {"city": "Oslo"}}))
    )
    tools: list[anthropic.types.ToolParam] = [
        {
            "name": "get_weather",
            "description": "d",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with (
        anthropic.Anthropic(base_url=ollama.url(), api_key="x", max_retries=0) as client,
        client.messages.stream(
            model="claude-haiku-5-5",
            max_tokens=40,
            tools=tools,
            messages=[{"role": "user", "content": "Oslo?"}],
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"city": "Oslo"}


def test_ollama_non_streaming(ollama: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(
        Reply(
            json={
                "model": "llama3.2",
                "message": {"role": "assistant", "content": "Hi!"},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 3,
                "eval_count": 2,
            }
        )
    )
    with anthropic.Anthropic(base_url=ollama.url(), api_key="x", max_retries=0) as client:
        message = client.messages.create(
            model="claude-haiku-5-5", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert isinstance(message.content[0], anthropic.types.TextBlock)
    assert message.content[0].text == "Hi!"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 2)
    assert upstream.seen[-1].body["stream"] is False


def test_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # the test takes an ephemeral port itself
        holder.listen()
        port = holder.getsockname()[1]
        (tmp_path / "p.yaml").write_text(f"port: {port}\nbase_url: http://127.0.0.1:9/v1\n")
        result = subprocess.run(
            [sys.executable, "-m", "multiport", "serve", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"p: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_leaves_out_its_provider_and_serves_the_others(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = free_ports(1)[0]
        (tmp_path / "busy.yaml").write_text(f"port: {taken}\nbase_url: http://127.0.0.1:9/v1\n")
        (tmp_path / "fine.yaml").write_text(f"port: {free}\nbase_url: http://127.0.0.1:9/v1\n")
        gateway = Gateway([str(tmp_path)], {}, [free], tmp_path)
        health = httpx.get(f"http://127.0.0.1:{free}/health", timeout=5)
        log = gateway.stop()
        strict = subprocess.run(
            [sys.executable, "-m", "multiport", "serve", "--strict", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert health.json()["provider"] == "fine"
    assert f"busy: cannot listen on 127.0.0.1:{taken}" in log
    assert "not serving it" in log
    assert strict.returncode == 1
    assert f"busy: cannot listen on 127.0.0.1:{taken}" in strict.stderr


def _mixed_providers(directory: Path) -> tuple[Path, list[int], Path]:
    """Two good provider files and one broken one (a wrong-typed value on line 4) that
    claims the port of one and the name of the other, and sorts first; returns (the
    folder, the good ports, the broken file)."""
    folder = directory / "providers.d"
    folder.mkdir()
    ports = free_ports(2)
    upstream = "base_url: http://127.0.0.1:9/v1\n"
    (folder / "alpha.yaml").write_text(f"port: {ports[0]}\n{upstream}")
    (folder / "beta.yaml").write_text(f"port: {ports[1]}\n{upstream}")
    broken = folder / "a-broken.yaml"
    broken.write_text(f"port: {ports[0]}\n{upstream}name: beta\ntimeouts:\n  read: soon\n")
    return folder, ports, broken


def test_a_broken_file_is_named_and_the_others_are_served(tmp_path: Path) -> None:
    folder, ports, broken = _mixed_providers(tmp_path)
    gateway = Gateway([str(folder)], {"MULTIPORT_CACHE_DIR": str(tmp_path)}, ports, tmp_path)
    try:
        for name, port in zip(("alpha", "beta"), ports, strict=True):
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            assert (health["provider"], health["status"]) == (name, "ok")
    finally:
        log = gateway.stop()
    assert f"{broken}:5:9: error: Expected `float`, got `str`" in log
    assert f"multiport: not serving {broken}: 1 error(s)" in log
    assert "already used" not in log  # its clashes are not the good files' fault
    assert "Traceback" not in log
    assert gateway.process.returncode == 0


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiport", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_strict_serves_nothing_when_one_file_is_broken(tmp_path: Path) -> None:
    folder, _, broken = _mixed_providers(tmp_path)
    result = _serve(str(folder), "--strict")
    assert result.returncode == 1
    assert f"{broken}:5:9: error:" in result.stderr
    assert "error(s); run `multiport validate` for details" in result.stderr
    assert "Traceback" not in result.stderr


def test_nothing_servable_exits_1(tmp_path: Path) -> None:
    folder, _, broken = _mixed_providers(tmp_path)
    for good in ("alpha.yaml", "beta.yaml"):
        (folder / good).unlink()
    result = _serve(str(folder))
    assert result.returncode == 1
    assert f"{broken}:5:9: error:" in result.stderr
    assert "multiport: no provider to serve" in result.stderr


def test_serve_help_says_what_happens_to_a_broken_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from multiport.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "A file with errors is left out and named on stderr" in out
    assert "--strict start nothing when any provider file has an error" in out
