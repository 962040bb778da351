"""Model catalogs: JSONPath extraction, failures that keep the last good list, disk cache."""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from multiport.catalog import Catalog
from multiport.compile import load_providers
from multiport.provider import Provider
from multiport.upstream import Upstream

from .conftest import PROVIDERS_DIR


def github_catalog(n: int) -> list[dict[str, Any]]:
    """A GitHub Models catalog of `n` models, in the shape GitHub serves."""
    models = []
    for i in range(n):
        publisher = ["openai", "meta", "mistral-ai", "microsoft"][i % 4]
        models.append(
            {
                "id": f"{publisher}/model-{i:03d}",
                "name": f"Model {i:03d}",
                "publisher": publisher,
                "summary": "A model.",
                "version": "1",
                "capabilities": ["streaming", "tool-calling"] if i % 2 == 0 else ["streaming"],
                "limits": {"max_input_tokens": 128000 + i, "max_output_tokens": 4096 + i},
                "rate_limit_tier": "low",
                "supported_input_modalities": ["text", "image"] if i % 3 == 0 else ["text"],
                "supported_output_modalities": ["text"],
                "tags": [],
            }
        )
    models[0]["id"] = "openai/gpt-4.1-mini"
    return models


def _shipped(name: str, env: dict[str, str]) -> Provider:
    result = load_providers([str(PROVIDERS_DIR / f"{name}.yaml")], env)
    return result.providers[0]


CATALOG_URL = "http://catalog.test/catalog/models"


@pytest.fixture
def github(tmp_path: Path) -> tuple[Provider, Path]:
    # The catalog on the base URL's origin: the token goes only there.
    env = {
        "GITHUB_TOKEN": "ghp_testtoken",
        "GITHUB_MODELS_CATALOG_URL": CATALOG_URL,
        "GITHUB_MODELS_BASE_URL": "http://catalog.test/inference",
    }
    return _shipped("github-models", env), tmp_path


async def test_github_catalog_extraction(
    github: tuple[Provider, Path], respx_mock: respx.MockRouter
) -> None:
    provider, cache = github
    route = respx_mock.get(CATALOG_URL).respond(json=github_catalog(160))
    catalog = Catalog(provider, cache)
    assert catalog.source == "fallback"
    upstream = Upstream(provider, httpx.AsyncHTTPTransport())
    await catalog.refresh(upstream)
    await upstream.aclose()
    assert catalog.source == "live"
    assert len(catalog.models) == 160
    model = catalog.models["meta/model-001"]
    assert model.display_name == "Model 001"
    assert model.owned_by == "meta"
    assert (model.context_window, model.max_output_tokens) == (128001, 4097)
    assert model.capabilities == ("streaming",)
    assert catalog.models["openai/gpt-4.1-mini"].input_modalities == ("text", "image")
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer ghp_testtoken"
    assert request.headers["x-github-api-version"] == "2022-11-28"


async def test_failures_keep_last_good_list_and_cache_survives_restart(
    github: tuple[Provider, Path], respx_mock: respx.MockRouter
) -> None:
    provider, cache = github
    route = respx_mock.get(CATALOG_URL)
    upstream = Upstream(provider, httpx.AsyncHTTPTransport())
    catalog = Catalog(provider, cache)
    route.respond(json=github_catalog(10), headers={"etag": '"abc"'})
    await catalog.refresh(upstream)
    assert len(catalog.models) == 10
    route.respond(500, json={"error": "boom"})
    await catalog.refresh(upstream)
    assert len(catalog.models) == 10
    assert catalog.last_error is not None
    assert "500" in catalog.last_error
    route.respond(200, content=b"<html>not json")
    await catalog.refresh(upstream)
    assert len(catalog.models) == 10
    assert "invalid JSON" in (catalog.last_error or "")
    route.respond(200, json={"unexpected": "shape"})
    await catalog.refresh(upstream)
    assert len(catalog.models) == 10
    route.respond(304)
    await catalog.refresh(upstream)
    assert route.calls.last.request.headers["if-none-match"] == '"abc"'
    assert catalog.source == "live"
    assert catalog.last_error is None
    await upstream.aclose()
    restarted = Catalog(provider, cache)
    assert restarted.source == "cache"
    assert len(restarted.models) == 10


async def test_hanging_catalog_times_out_and_keeps_fallback(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    provider = _shipped(
        "openai", {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://openai.test/v1"}
    )
    respx_mock.get("http://openai.test/v1/models").side_effect = httpx.ReadTimeout("slow")
    catalog = Catalog(provider, tmp_path)
    upstream = Upstream(provider, httpx.AsyncHTTPTransport())
    await catalog.refresh(upstream)
    await upstream.aclose()
    assert catalog.source == "fallback"
    assert sorted(catalog.models) == ["gpt-4.1", "gpt-4.1-mini", "gpt-4o"]
    assert "did not answer in time" in (catalog.last_error or "")


def test_openai_and_ollama_shapes(tmp_path: Path) -> None:
    openai = Catalog(_shipped("openrouter", {}), tmp_path)
    found = openai.extract(
        {
            "data": [
                {
                    "id": "a/b",
                    "name": "A B",
                    "context_length": 1000,
                    "top_provider": {"max_completion_tokens": 50},
                    "architecture": {"input_modalities": ["text", "image"]},
                }
            ]
        }
    )
    assert found["a/b"].display_name == "A B"
    assert (found["a/b"].context_window, found["a/b"].max_output_tokens) == (1000, 50)
    ollama = Catalog(_shipped("ollama", {}), tmp_path)
    tags = ollama.extract(
        {
            "models": [
                {
                    "name": "llama3.2:latest",
                    "model": "llama3.2:latest",
                    "details": {"family": "llama"},
                }
            ]
        }
    )
    assert list(tags) == ["llama3.2:latest"]
    assert tags["llama3.2:latest"].owned_by == "llama"


def test_require_capabilities_filter(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://x\ncatalog:\n  items: $[*]\n  fields: {capabilities: capabilities}\n  require_capabilities: [tool-calling]\n"
    )
    provider = load_providers([str(tmp_path / "p.yaml")], {}).providers[0]
    found = Catalog(provider, tmp_path).extract(github_catalog(10))
    assert len(found) == 5
    assert all("tool-calling" in m.capabilities for m in found.values())


def test_five_thousand_models_footprint(tmp_path: Path) -> None:
    provider = _shipped("github-models", {})
    catalog = Catalog(provider, tmp_path)
    document = github_catalog(5000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    models = catalog.extract(document)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(models) == 5000
    per_model = (after - before) / 5000
    print(
        f"catalog footprint: {per_model:.0f} bytes per model, {(after - before) / 1e6:.1f} MB for 5000"
    )
    assert per_model < 4096, per_model
    assert sys.getsizeof(models) < 1_000_000


def test_routing_uses_catalog_candidates(tmp_path: Path) -> None:
    from multiport.catalog import ModelInfo
    from multiport.mapping import resolve

    provider = _shipped("github-models", {})
    rules = provider.rules
    haiku = resolve("claude-haiku-5-5", rules, {"openai/gpt-4o-mini"}.__contains__)
    assert haiku.target == "openai/gpt-4o-mini"
    assert haiku.rule is not None
    assert haiku.rule.index == 0
    passthrough = resolve("meta/llama-4", rules, {"meta/llama-4"}.__contains__)
    assert passthrough.target == "meta/llama-4"
    nothing = resolve("gpt-5", rules, set().__contains__)
    assert nothing.target is None
    assert ModelInfo("x").id == "x"


def test_models_and_route_cli(
    github: tuple[Provider, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from multiport.cli import main

    _, cache = github
    cache_file = cache / "github-models.json"
    models = [
        {
            "id": m["id"],
            "display_name": m["name"],
            "context_window": 128000,
            "max_output_tokens": 4096,
            "capabilities": m["capabilities"],
        }
        for m in github_catalog(160)
    ]
    cache_file.write_text(json.dumps({"url": CATALOG_URL, "fetched_at": 1.0, "models": models}))
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(cache))
    monkeypatch.setenv("GITHUB_MODELS_CATALOG_URL", CATALOG_URL)
    assert main(["models", "github-models", "--dir", str(PROVIDERS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "meta/model-001" in out
    assert "Model 001" in out
    assert "160 model(s) from cache" in out
    assert main(["route", "github-models", "claude-haiku-5-5", "--dir", str(PROVIDERS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "rule       #0 /^claude-.*haiku/" in out
    assert "openai/gpt-4.1-mini  (in catalog)" in out
    assert "target     openai/gpt-4.1-mini" in out


async def test_refresh_while_requests_are_in_flight(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    import asyncio

    from multiport.engine import Engine

    provider = _shipped(
        "openai", {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://openai.test/v1"}
    )
    lists = iter(
        [
            {"data": [{"id": "gpt-4.1"}, {"id": "gpt-4.1-mini"}]},
            {"data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]},
        ]
    )
    respx_mock.get("http://openai.test/v1/models").mock(
        side_effect=lambda request: httpx.Response(200, json=next(lists))
    )

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        model = json.loads(request.content)["model"]
        return httpx.Response(
            200,
            json={
                "choices": [
                    {"message": {"role": "assistant", "content": model}, "finish_reason": "stop"}
                ]
            },
        )

    respx_mock.post("http://openai.test/v1/chat/completions").mock(side_effect=slow_answer)
    upstream = Upstream(provider, httpx.AsyncHTTPTransport())
    catalog = Catalog(provider, tmp_path)
    engine = Engine(provider, upstream, catalog)
    await catalog.refresh(upstream)
    body = json.dumps(
        {
            "model": "claude-haiku-5-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
    ).encode()
    in_flight = [asyncio.create_task(engine.messages(body, {})) for _ in range(20)]
    await asyncio.sleep(0.01)
    await catalog.refresh(upstream)  # the list changes under the requests
    later = [asyncio.create_task(engine.messages(body, {})) for _ in range(5)]
    answers = await asyncio.gather(*in_flight, *later)
    await upstream.aclose()
    targets = [json.loads(a.body)["content"][0]["text"] for a in answers if a.body]
    assert len(targets) == 25
    assert set(targets[:20]) == {"gpt-4.1-mini"}
    assert set(targets[20:]) == {"gpt-4o-mini"}


def test_created_becomes_epoch_seconds(tmp_path: Path) -> None:
    catalog = Catalog(_shipped("anthropic", {"ANTHROPIC_API_KEY": "k"}), tmp_path)
    day = 1739923200  # 2025-02-19T00:00:00Z
    given: dict[str, Any] = {
        "iso-z": "2025-02-19T00:00:00Z",
        "iso-offset": "2025-02-19T02:00:00+02:00",
        "iso-naive": "2025-02-19T00:00:00",
        "date-only": "2025-02-19",
        "epoch-int": day,
        "epoch-float": day + 0.75,
        "epoch-string": str(day),
        "garbage": "last tuesday",
        "empty": "",
        "boolean": True,
        "beyond-any-date": 10**30,
        "missing": None,
    }
    found = catalog.extract({"data": [{"id": k, "created_at": v} for k, v in given.items()]})
    created = {k: m.created for k, m in found.items()}
    assert created == {
        "iso-z": day,
        "iso-offset": day,
        "iso-naive": day,
        "date-only": day,
        "epoch-int": day,
        "epoch-float": day,
        "epoch-string": day,
        "garbage": None,
        "empty": None,
        "boolean": None,
        "beyond-any-date": None,
        "missing": None,
    }


def test_models_endpoint_shows_iso_catalog_dates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, respx_mock: respx.MockRouter
) -> None:
    from litestar.testing import TestClient

    from multiport.app import create_app

    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path))
    url = "http://anthropic.test/v1/models"
    provider = _shipped("anthropic", {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_CATALOG_URL": url})
    respx_mock.get(url).respond(
        json={
            "data": [
                {
                    "type": "model",
                    "id": "claude-sonnet-4-5",
                    "display_name": "Claude Sonnet 4.5",
                    "created_at": "2025-09-29T00:00:00Z",
                }
            ]
        }
    )
    with TestClient(create_app(provider, transport=httpx.AsyncHTTPTransport())) as client:
        deadline = time.monotonic() + 5
        while client.get("/health").json()["catalog"]["source"] != "live":
            assert time.monotonic() < deadline, "the catalog was never fetched"
            time.sleep(0.01)
        listed = client.get("/v1/models?limit=1000").json()["data"]
        openai_shape = client.get("/v1/models?format=openai").json()["data"]
    sonnet = next(m for m in listed if m["id"] == "claude-sonnet-4-5")
    assert sonnet["created_at"] == "2025-09-29T00:00:00Z"
    assert next(m for m in openai_shape if m["id"] == "claude-sonnet-4-5")["created"] == 1759104000


async def test_a_catalog_with_only_a_fallback_list_fetches_nothing(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    # respx fails on any request this test did not mock: the catalog must not make one.
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://upstream.test/v1\ncatalog:\n  fallback: [only-model]\n"
    )
    provider = load_providers([str(tmp_path / "p.yaml")], {}).providers[0]
    catalog = Catalog(provider, tmp_path)
    upstream = Upstream(provider, httpx.AsyncHTTPTransport())
    await catalog.run(upstream)
    await catalog.refresh(upstream)
    await upstream.aclose()
    assert catalog.source == "fallback"
    assert catalog.last_error is None
    assert catalog.has("only-model")
