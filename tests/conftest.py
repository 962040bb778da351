"""Shared fixtures and helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from multiport.app import create_app

from .apps import provider
from .upstream_server import ScriptedUpstream

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
PROVIDERS_DIR = ROOT / "providers.d"


def claude_code_fixture(name: str) -> dict[str, Any]:
    """One recorded Claude Code request (headers and body)."""
    data: dict[str, Any] = json.loads((DATA / "claude-code" / name).read_text())
    return data


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No provider credentials or overrides leak in from the developer's shell."""
    for name in list(__import__("os").environ):
        if name.endswith(("_API_KEY", "_TOKEN", "_BASE_URL", "_CATALOG_URL", "_UPSTREAM_URL")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    """A scripted upstream on 127.0.0.1, shared by the tests of one module."""
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    """The test provider of `apps.py` in process, its upstream mocked by respx."""
    app = create_app(provider(tmp_path), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as test_client:
        yield test_client
