"""The engine's routing through its HTTP face."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app

from .apps import (
    UPSTREAM,
    answer_ok,
    ask,
    provider,
    sent_body,
)


def test_every_listed_fallback_id_is_routable(
    tmp_path: Path, respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path / "cache"))
    catalog = "catalog:\n  url: /models\n  fallback: [listed-model]\n"
    catalog_route = respx_mock.get(f"{UPSTREAM}/models").respond(503)
    answer_ok(respx_mock)
    app = create_app(provider(tmp_path, catalog), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        deadline = time.monotonic() + 5  # the catalog is fetched in the background
        while not catalog_route.called and time.monotonic() < deadline:
            time.sleep(0.01)
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "listed-model" in listed
        for model in listed:
            response = ask(client, model=model)
            assert response.status_code == 200, (model, response.text)
    assert sent_body(respx_mock)["model"] == "listed-model"
