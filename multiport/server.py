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
from .errors import MultiportError
from .provider import Provider

__all__ = ["PortFailed", "PortInUse", "bind", "serve"]

log = logging.getLogger("multiport")


class PortInUse(MultiportError):
    """A provider's port cannot be bound."""


class PortFailed(MultiportError):
    """A provider's port stopped serving on its own; every other port was stopped too."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # One handler for the whole process stops every port together (see `serve`).
        yield


async def _serve_port(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits the process when an app fails to start; that would skip the
        # orderly stop of the other ports, so it becomes one port's failure instead.
        raise RuntimeError(f"the app failed to start (uvicorn exit {exc.code})") from None


def _failure(task: asyncio.Task[None], stopping: bool) -> BaseException | None:
    """Why a finished port task ended, when it was not asked to."""
    if task.cancelled():
        return None if stopping else asyncio.CancelledError("the port was cancelled")
    exc = task.exception()
    if exc is None and not stopping:
        return RuntimeError("the port stopped serving without being asked to")
    return exc


def _announce(provider: Provider) -> None:
    """Log one line for a port that serves."""
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
    """Serve every provider until SIGINT or SIGTERM.

    Raises `PortInUse` before serving, and `PortFailed` once any port dies (after
    stopping the others).
    """
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
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = {
        asyncio.create_task(_serve_port(s, sock), name=p.name): p
        for s, sock, p in zip(servers, sockets, providers, strict=True)
    }
    failures: list[tuple[Provider, BaseException]] = []
    try:
        while not all(s.started for s in servers) and not any(t.done() for t in tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for provider, server in zip(providers, servers, strict=True):
            if server.started:
                _announce(provider)
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = _failure(task, stopping)
                if exc is None:
                    continue
                provider = tasks[task]
                log.error(
                    "%s: the port %s:%d failed, stopping every port: %s: %s",
                    provider.name,
                    provider.spec.host,
                    provider.spec.port,
                    type(exc).__name__,
                    exc,
                )
                failures.append((provider, exc))
                stop()
    finally:
        # Cancelled or failed, no port outlives this call.
        stop()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # read: asyncio would warn of it at exit
        for sock in sockets:
            sock.close()  # a port that died before listening still holds its socket
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if failures:
        provider, exc = failures[0]
        names = ", ".join(p.name for p, _ in failures)
        raise PortFailed(
            f"{names}: port failed ({type(exc).__name__}: {exc}); every port was stopped"
        ) from exc
