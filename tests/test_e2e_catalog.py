"""Catalog discovery end to end: `serve --only github-models` (the shipped github-models.yaml,
copied onto a free ephemeral port) against a loopback catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from .conftest import PROVIDERS_DIR
from .gateway import Gateway, provider_copy
from .test_catalog import github_catalog
from .upstream_server import Reply, ScriptedUpstream, chat_completion


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.catalog = github_catalog(160)
    yield server
    server.stop()


def _env(upstream: ScriptedUpstream, cache: Path, catalog_url: str | None = None) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": "ghp_e2e_token_value",
        "GITHUB_MODELS_BASE_URL": upstream.url + "/inference",
        "GITHUB_MODELS_CATALOG_URL": catalog_url or upstream.url + "/catalog/models",
        "MULTIPORT_CACHE_DIR": str(cache),
    }


def _serve(env: dict[str, str], tmp_path: Path) -> Gateway:
    """`multiport serve --only github-models` over a fresh copy of the shipped file."""
    github_models, port = provider_copy("github-models", tmp_path)
    return Gateway([str(github_models.parent), "--only", "github-models"], env, [port], tmp_path)


def _wait_for_catalog(url: str, source: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state: dict[str, object] = httpx.get(url + "/health", timeout=2).json()["catalog"]
        if state["source"] == source:
            return state
        time.sleep(0.05)
    raise AssertionError(f"catalog never reached {source}: {state}")


def test_discovery_then_restart_from_cache(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    gateway = _serve(_env(upstream, cache), tmp_path)
    try:
        state = _wait_for_catalog(gateway.url(), "live")
        assert state["size"] == 160
        listed = httpx.get(gateway.url() + "/v1/models?limit=1000", timeout=5).json()["data"]
        by_id = {m["id"]: m for m in listed}
        assert len([i for i in by_id if "/" in i]) == 160
        assert by_id["meta/model-001"]["display_name"] == "Model 001"
        assert by_id["claude-haiku-5-5"]["display_name"].endswith("openai/gpt-4.1-mini")
        upstream.reset()
        upstream.reply(Reply(json=chat_completion("routed")))
        with anthropic.Anthropic(base_url=gateway.url(), api_key="x", max_retries=0) as client:
            client.messages.create(
                model="meta/model-005", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert upstream.seen[-1].body["model"] == "meta/model-005"  # a catalog id passes through
        openai_shape = httpx.get(
            gateway.url() + "/v1/models", headers={"user-agent": "OpenAI/Python 2.0"}, timeout=5
        ).json()
        assert openai_shape["object"] == "list"
    finally:
        assert "Traceback" not in gateway.stop()


def test_restart_with_catalog_unreachable_serves_cached_list(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    server = ScriptedUpstream().start()
    server.catalog = github_catalog(160)
    env = _env(server, cache)
    try:
        first = _serve(env, tmp_path)
        try:
            _wait_for_catalog(first.url(), "live")
        finally:
            first.stop()
    finally:
        server.stop()  # the catalog is now unreachable: connection refused
    second = _serve(env, tmp_path)  # a new copy on a new ephemeral port; the same cache
    try:
        listed = httpx.get(second.url() + "/v1/models?limit=1000", timeout=5).json()["data"]
        assert len([m for m in listed if "/" in m["id"]]) == 160
        health = httpx.get(second.url() + "/health", timeout=5).json()
        assert health["catalog"]["source"] == "cache"
        time.sleep(0.5)  # the background refresh fails and keeps the list
        health = httpx.get(second.url() + "/health", timeout=5).json()
        assert health["catalog"]["size"] == 160
    finally:
        assert "Traceback" not in second.stop()


def test_hanging_catalog_never_blocks(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.catalog_hang = True
    try:
        gateway = _serve(_env(upstream, tmp_path / "c"), tmp_path)
        try:
            upstream.reset()
            upstream.reply(Reply(json=chat_completion("via fallback")))
            with anthropic.Anthropic(base_url=gateway.url(), api_key="x", max_retries=0) as client:
                message = client.messages.create(
                    model="claude-haiku-5-5",
                    max_tokens=10,
                    messages=[{"role": "user", "content": "x"}],
                )
            answered_after = time.monotonic() - gateway.started_at
            print(
                f"health after {gateway.ready_after:.2f}s, a message after {answered_after:.2f}s, catalog hanging"
            )
            assert isinstance(message.content[0], anthropic.types.TextBlock)
            assert message.content[0].text == "via fallback"
            assert upstream.seen[-1].body["model"] == "openai/gpt-4.1-mini"
            state = httpx.get(gateway.url() + "/health", timeout=2).json()["catalog"]
            assert state["source"] == "fallback"
            assert gateway.ready_after < 5  # liveness bound; the measured figure is printed
        finally:
            assert "Traceback" not in gateway.stop()
    finally:
        upstream.catalog_hang = False


def test_models_command_prints_live_catalog(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    env = {**os.environ, **_env(upstream, tmp_path / "cache")}

    def models(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "multiport", "models", "github-models"]
        return subprocess.run(
            [*command, "--dir", str(PROVIDERS_DIR), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = models("--refresh")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "CONTEXT", "OUTPUT", "CAPABILITIES"]
    prefixes = ("openai/", "meta/", "mistral-ai/", "microsoft/")
    assert len([line for line in lines if line.startswith(prefixes)]) == 160
    assert any(
        line.startswith("meta/model-001") and "Model 001" in line and "128001" in line
        for line in lines
    )
    assert "160 model(s) from live" in result.stdout
    assert len(json.loads(models("--format", "json").stdout)["models"]) == 160
