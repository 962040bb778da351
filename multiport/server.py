"""All provider ports in one process: one uvicorn server per port, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator, Sequence

import uvicorn

from .app import create_app
from .compile import Provider
from .errors import MultiportError

__all__ = ["PortInUse", "bind", "serve"]

log = logging.getLogger("multiport")


class PortInUse(MultiportError):
    """A provider's port cannot be bound."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # One handler for the whole process stops every port together (see `serve`).
        yield


def bind(providers: Sequence[Provider]) -> list[socket.socket]:
    """Bind every port before serving any, so a taken port is one clear error."""
    sockets: list[socket.socket] = []
    problems = []
    for provider in providers:
        host, port = provider.spec.host, provider.spec.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            problems.append(f"{provider.name}: cannot listen on {host}:{port} ({exc.strerror})")
            continue
        sock.set_inheritable(True)
        sockets.append(sock)
    if problems:
        for sock in sockets:
            sock.close()
        raise PortInUse(
            "; ".join(problems) + ". Stop what uses the port, or change `port:` in the file."
        )
    return sockets


async def serve(providers: Sequence[Provider], *, log_level: str = "warning") -> None:
    """Serve every provider until SIGINT or SIGTERM; raises `PortInUse` before serving."""
    sockets = bind(providers)
    servers = []
    for provider in providers:
        config = uvicorn.Config(
            create_app(provider),
            log_level=log_level,
            access_log=log_level == "info",  # -v: one line per request
            lifespan="on",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        servers.append(_Server(config))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [
        asyncio.create_task(s.serve(sockets=[sock]), name=p.name)
        for s, sock, p in zip(servers, sockets, providers, strict=True)
    ]
    while not all(s.started for s in servers) and not any(t.done() for t in tasks):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for provider in providers:
        missing = (
            f"  (credentials missing: set {', '.join(provider.missing_credentials)})"
            if provider.missing_credentials
            else ""
        )
        log.info(
            "%-14s http://%s:%d → %s (%s)%s",
            provider.name,
            provider.spec.host,
            provider.spec.port,
            provider.base_url,
            provider.wire.dialect,
            missing,
        )
    await asyncio.gather(*tasks, return_exceptions=True)
