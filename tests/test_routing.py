"""The shipped router's rules: each kind of request reaches its rule's candidates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multiport.cli import main
from multiport.compile import load_providers
from multiport.router_app import explain
from multiport.routing import Router

from .conftest import PROVIDERS_DIR

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
KINDS: dict[str, tuple[dict[str, Any], str, str]] = {
    "background": (
        {"model": "claude-haiku-5-5"},
        "background",
        "github-models/openai/gpt-4.1-mini",
    ),
    "web-search": (
        {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]},
        "web-search",
        "anthropic/claude-sonnet-4-5",
    ),
    "long-context": (
        {"messages": [{"role": "user", "content": "word " * 100_000}]},
        "long-context",
        "gemini/gemini-2.5-pro",
    ),
    "think": (
        {"thinking": {"type": "enabled", "budget_tokens": 4096}},
        "think",
        "deepseek/deepseek-reasoner",
    ),
    "image": (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": PNG}]}]},
        "image",
        "github-models/openai/gpt-4.1",
    ),
    # Claude Code asks for adaptive thinking on every request: that is no `think` request.
    "default": ({"thinking": {"type": "adaptive"}}, "default", "github-models/openai/gpt-4.1"),
}


def _router() -> Router:
    result = load_providers([str(PROVIDERS_DIR)], {})
    [router] = result.routers
    return router


def _body(extra: dict[str, Any]) -> bytes:
    base = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return json.dumps({**base, **extra}).encode()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_request_reaches_its_rule(kind: str) -> None:
    extra, rule, first = KINDS[kind]
    report = explain(_router(), _body(extra))
    assert report["rule"] == rule
    assert report["candidates"][0] == first


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_route_prints_the_path_of_a_request(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, rule, first = KINDS[kind]
    (tmp_path / "request.json").write_bytes(_body(extra))
    assert (
        main(
            [
                "route",
                "router",
                "--dir",
                str(PROVIDERS_DIR),
                "--body",
                str(tmp_path / "request.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"rule       {rule}\n" in out
    assert f"candidate  {first}" in out


def test_every_shipped_candidate_names_a_shipped_provider() -> None:
    result = load_providers([str(PROVIDERS_DIR)], {})
    served = {p.name for p in result.providers}
    [router] = result.routers
    assert {c.provider for r in router.rules for c in r.candidates} <= served


def test_half_open_lets_one_call_through_at_a_time() -> None:
    from multiport.breaker import Breaker
    from multiport.router_spec import BreakerSpec

    breaker = Breaker(BreakerSpec(failures=1, cool_down=0.01))
    assert breaker.acquire("a/m")
    breaker.failure("a/m")
    assert breaker.state("a/m") == "open"
    assert not breaker.acquire("a/m")
    import time

    time.sleep(0.02)
    assert breaker.state("a/m") == "half-open"
    assert breaker.acquire("a/m")  # the one trial
    assert not breaker.acquire("a/m")  # a second caller waits for it
    breaker.success("a/m")
    assert breaker.state("a/m") == "closed"
    assert breaker.acquire("a/m")


def test_route_says_which_candidates_would_be_skipped_now_and_why(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["route", "router", "claude-sonnet-5-5", "--dir", str(PROVIDERS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "github-models/openai/gpt-4.1  (skipped now: no credentials: set GITHUB_TOKEN)" in out
    assert "candidate  ollama/llama3.2\n" in out  # needs no key: tried


def test_a_trial_that_ends_without_a_verdict_lets_another_try() -> None:
    from multiport.breaker import Breaker
    from multiport.router_spec import BreakerSpec

    breaker = Breaker(BreakerSpec(failures=1, cool_down=0.01))
    breaker.failure("a/m")
    import time

    time.sleep(0.02)
    assert breaker.acquire("a/m")
    breaker.release("a/m")  # the client left mid-trial
    assert breaker.acquire("a/m")
