"""All ports in one process: a port that dies is logged and stops the whole process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from pathlib import Path

import httpx
import pytest

from multiport import ports as ports_module
from multiport.cli import main
from multiport.compile import load_providers
from multiport.provider import Provider
from multiport.server import PortFailed, serve

from .upstream_server import free_port


def _providers(tmp_path: Path) -> tuple[list[Provider], int, int]:
    """Two provider files on free loopback ports, `healthy` and `doomed`."""
    healthy, doomed = free_port(), free_port()
    for name, port in (("healthy", healthy), ("doomed", doomed)):
        (tmp_path / f"{name}.yaml").write_text(
            f"host: 127.0.0.1\nport: {port}\nbase_url: http://127.0.0.1:9/v1\n"
        )
    result = load_providers([str(tmp_path)], {})
    assert not result.errors, result.problems
    assert sorted(p.name for p in result.providers) == ["doomed", "healthy"]
    return result.providers, healthy, doomed


async def _health(client: httpx.AsyncClient, port: int) -> int:
    """The status of the port's /health, once it listens."""
    for _ in range(1000):
        try:
            return (await client.get(f"http://127.0.0.1:{port}/health")).status_code
        except httpx.ConnectError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"port {port} never listened")


def _crash(
    monkeypatch: pytest.MonkeyPatch, doomed: int, healthy: int, error: BaseException
) -> list[int]:
    """The server on `doomed` raises `error` once `healthy` answers; gives /health's status."""
    original = ports_module._Server.serve
    answered: list[int] = []

    async def serve_or_die(
        self: ports_module._Server, sockets: list[socket.socket] | None = None
    ) -> None:
        assert sockets is not None
        if sockets[0].getsockname()[1] != doomed:
            await original(self, sockets)
            return
        async with httpx.AsyncClient(trust_env=False) as client:
            answered.append(await _health(client, healthy))
        raise error

    monkeypatch.setattr(ports_module._Server, "serve", serve_or_die)
    return answered


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (SystemExit(3), "the app failed to start (uvicorn exit 3)"),
    ],
)
async def test_a_dying_port_is_logged_and_stops_every_port(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: BaseException,
    shown: str,
) -> None:
    providers, healthy, doomed = _providers(tmp_path)
    answered = _crash(monkeypatch, doomed, healthy, error)
    with (
        caplog.at_level(logging.INFO, logger="multiport"),
        pytest.raises(PortFailed, match="doomed") as raised,
    ):
        await asyncio.wait_for(serve(providers), 15)
    assert answered == [200]  # the healthy port was serving when the other died
    assert not _listening(healthy)  # and is stopped now
    assert not _listening(doomed)
    assert shown in str(raised.value)
    [line] = _error_lines(caplog)
    assert line.startswith(f"doomed: the port 127.0.0.1:{doomed} failed")
    assert shown in line


def test_serve_command_exits_non_zero_when_a_port_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, healthy, doomed = _providers(tmp_path)
    answered = _crash(monkeypatch, doomed, healthy, RuntimeError("boom"))
    # Should the process keep serving, stop it the way Ctrl-C does, so the test ends.
    interrupt = threading.Timer(15, os.kill, (os.getpid(), signal.SIGINT))
    level = logging.getLogger("multiport").level
    interrupt.start()
    try:
        status = main(["serve", str(tmp_path)])
    finally:
        interrupt.cancel()
        logging.getLogger("multiport").setLevel(level)
    assert status == 1
    assert answered == [200]
    assert not _listening(healthy)
    [line] = _error_lines(caplog)
    assert "doomed" in line
    assert "RuntimeError: boom" in line


async def test_sigint_stops_every_port_without_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    providers, healthy, doomed = _providers(tmp_path)
    task = asyncio.create_task(serve(providers))
    async with httpx.AsyncClient(trust_env=False) as client:
        assert [await _health(client, healthy), await _health(client, doomed)] == [200, 200]
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(task, 15)  # returns: no PortFailed
    assert not _listening(healthy)
    assert not _listening(doomed)
    assert _error_lines(caplog) == []
