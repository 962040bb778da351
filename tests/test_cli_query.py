"""`multiport models`: its exit status says whether the catalog fetch worked."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from multiport.cli import main

from .apps import PROVIDER, UPSTREAM
from .upstream_server import free_ports


@pytest.mark.parametrize("shape", ["table", "json"])
def test_models_refresh_fails_when_the_fetch_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shape: str
) -> None:
    closed = free_ports(1)[0]  # nothing listens there
    (tmp_path / "p.yaml").write_text(
        PROVIDER + f"catalog:\n  url: http://127.0.0.1:{closed}/models\n  fallback: [m-1]\n"
    )
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path))
    argv = ["models", "p", "--dir", str(tmp_path), "--refresh", "--format", shape]
    assert main(argv) == 1
    assert "m-1" in capsys.readouterr().out  # what is known is still shown


def test_models_refresh_succeeds_when_the_fetch_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, respx_mock: respx.MockRouter
) -> None:
    (tmp_path / "p.yaml").write_text(PROVIDER + f"catalog:\n  url: {UPSTREAM}/models\n")
    respx_mock.get(f"{UPSTREAM}/models").respond(json={"data": [{"id": "m-1"}]})
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MULTIPORT_TRANSPORT", "httpx")  # the one respx sees
    assert main(["models", "p", "--dir", str(tmp_path), "--refresh"]) == 0
