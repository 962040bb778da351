"""The real Claude Code CLI (2.1.330, installed by .ci/run) through multiport (the shipped
openai.yaml, copied onto a free ephemeral port) to a scripted OpenAI-style upstream on
127.0.0.1. A missing CLI fails these tests, saying how to install it; it never skips them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT
from .gateway import Gateway, provider_copy
from .upstream_server import Reply, ScriptedUpstream, Seen, free_ports, text_chunks, tool_chunks

CLAUDE = Path(
    os.environ.get("MULTIPORT_CLAUDE", ROOT / ".ci" / "claude" / "node_modules" / ".bin" / "claude")
)
CLAUDE_CODE_VERSION = "2.1.330"
INSTALL = f"npm install --prefix .ci/claude @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"


def require_claude() -> None:
    """Fail, never skip, when the pinned Claude Code CLI is not installed."""
    if not (CLAUDE.is_file() and os.access(CLAUDE, os.X_OK)):
        pytest.fail(
            f"Claude Code CLI not found at {CLAUDE}. Install it with `{INSTALL}` "
            "(from the repository root), or run `bash .ci/run`, which installs it; "
            "MULTIPORT_CLAUDE may name another claude binary.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def gateway(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("cc")
    openai_yaml, port = provider_copy("openai", tmp)
    env = {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-cc-upstream",
        "MULTIPORT_CACHE_DIR": str(tmp),
    }
    gw = Gateway([str(openai_yaml.parent), "--only", "openai"], env, [port], tmp)
    yield gw
    assert "Traceback" not in gw.stop()


def claude(
    gateway: Gateway, tmp_path: Path, prompt: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    require_claude()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url(),
        "ANTHROPIC_API_KEY": "dummy",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    return subprocess.run(
        [str(CLAUDE), "-p", prompt, *extra],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plain_answer_is_printed(
    gateway: Gateway, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    upstream.responder = lambda seen: Reply(
        sse=text_chunks("Hello from ", "the scripted upstream.")
    )
    try:
        result = claude(gateway, tmp_path, "Say hello")
    finally:
        upstream.responder = None
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello from the scripted upstream."
    sent = upstream.seen[-1].body
    assert sent["messages"][0]["role"] == "system"
    assert sent["stream"] is True
    assert {"thinking", "context_management", "output_config", "metadata"}.isdisjoint(sent)


def _read_round_trip(
    gateway: Gateway, upstream: ScriptedUpstream, tmp_path: Path, word: str
) -> subprocess.CompletedProcess[str]:
    """Claude Code reads a file through the gateway; the upstream asks for it, then quotes it."""
    secret = tmp_path / "hello.txt"
    secret.write_text(f"The secret word is {word}.\n")

    def respond(seen: Seen) -> Reply:
        last = seen.body["messages"][-1]
        if last["role"] == "tool":
            return Reply(sse=text_chunks("The file says: " + last["content"].strip()))
        return Reply(
            sse=tool_chunks("Read", json.dumps({"file_path": str(secret)}), call_id="call_read_1")
        )

    upstream.reset()
    upstream.responder = respond
    try:
        result = claude(gateway, tmp_path, "read hello.txt")
    finally:
        upstream.responder = None
    assert result.returncode == 0, result.stderr
    assert f"The secret word is {word}." in result.stdout
    return result


def test_read_tool_round_trip(gateway: Gateway, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    _read_round_trip(gateway, upstream, tmp_path, "banana")
    second = upstream.seen[-1].body["messages"]
    assert [m["role"] for m in second][-2:] == ["assistant", "tool"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "Read"
    assert second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    assert "banana" in second[-1]["content"]


@pytest.mark.parametrize(("alias", "target"), [("haiku", "gpt-4.1-mini"), ("sonnet", "gpt-4.1")])
def test_model_aliases_reach_mapped_targets(
    gateway: Gateway, upstream: ScriptedUpstream, tmp_path: Path, alias: str, target: str
) -> None:
    upstream.reset()
    upstream.responder = lambda seen: Reply(sse=text_chunks(f"model {seen.body['model']}"))
    try:
        result = claude(gateway, tmp_path, "Which model?", "--model", alias)
    finally:
        upstream.responder = None
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"model {target}"
    assert {s.body["model"] for s in upstream.seen if s.method == "POST"} == {target}


@pytest.fixture(scope="module")
def router_gateway(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A router whose first candidate always answers 503; the second is openai.yaml."""
    failing = ScriptedUpstream().start()
    failing.responder = lambda seen: Reply(status=503, json={"error": {"message": "overloaded"}})
    tmp = tmp_path_factory.mktemp("cc-router")
    openai_yaml, openai_port = provider_copy("openai", tmp)
    down_port, router_port = free_ports(2)
    folder = openai_yaml.parent
    (folder / "down.yaml").write_text(
        f"port: {down_port}\nbase_url: {failing.url}/v1\nauth:\n  value: Bearer sk-down-0123456789\n"
    )
    (folder / "router.yaml").write_text(
        f"port: {router_port}\nrouter:\n  rules:\n    - to: [down/gpt-4.1, openai/gpt-4.1]\n"
        "  retry: {attempts: 1}\n"
    )
    env = {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-cc-upstream",
        "MULTIPORT_CACHE_DIR": str(tmp),
    }
    ports = [router_port, openai_port, down_port]
    gw = Gateway([str(folder), "--only", "openai", "down", "router"], env, ports, tmp)
    gw.failing = failing  # type: ignore[attr-defined]
    yield gw
    assert "Traceback" not in gw.stop()
    failing.stop()


def test_read_tool_round_trip_through_the_router_while_the_first_candidate_fails(
    router_gateway: Gateway, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    _read_round_trip(router_gateway, upstream, tmp_path, "cherry")
    failing: ScriptedUpstream = router_gateway.failing  # type: ignore[attr-defined]
    assert any(s.method == "POST" for s in failing.seen)  # the first candidate was tried
    assert "cherry" in upstream.seen[-1].body["messages"][-1]["content"]
