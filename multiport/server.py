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
from .scrub import Scrubber, guard_logs

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


def bind(
    providers: Sequence[Provider], *, strict: bool = True
) -> tuple[list[Provider], list[socket.socket]]:
    """Bind every port before serving any; the providers bound and their sockets.

    A taken port is one clear line. With `strict`, or when no port could be bound, it is
    an error (`PortInUse`); otherwise that provider is left out and the others served.
    """
    bound: list[Provider] = []
    sockets: list[socket.socket] = []
    problems = []
    for provider in providers:
        sock = _listen(provider)
        if isinstance(sock, str):
            problems.append(sock)
            continue
        bound.append(provider)
        sockets.append(sock)
    if problems and (strict or not bound):
        for sock in sockets:
            sock.close()
        raise PortInUse(
            "; ".join(problems) + ". Stop what uses the port, or change `port:` in the file."
        )
    for problem in problems:
        log.error("%s; not serving it. Stop what uses the port, or change `port:`.", problem)
    return bound, sockets


def _listen(provider: Provider) -> socket.socket | str:
    """A socket bound to the provider's port, or why there is none."""
    host, port = provider.spec.host, provider.spec.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        return f"{provider.name}: cannot listen on {host}:{port} ({exc.strerror})"
    sock.set_inheritable(True)
    return sock


class _Ports:
    """Every provider's uvicorn server on its bound socket, stopped together."""

    def __init__(
        self, providers: Sequence[Provider], sockets: list[socket.socket], log_level: str
    ) -> None:
        self.providers = providers
        self.sockets = sockets
        self.servers = [_Server(_config(p, log_level)) for p in providers]
        self.stopping = False
        self.failures: list[tuple[Provider, BaseException]] = []
        self.tasks: dict[asyncio.Task[None], Provider] = {}

    def stop(self) -> None:
        self.stopping = True
        for server in self.servers:
            server.should_exit = True

    async def run(self) -> None:
        self.tasks = {
            asyncio.create_task(_serve_port(s, sock), name=p.name): p
            for s, sock, p in zip(self.servers, self.sockets, self.providers, strict=True)
        }
        while not all(s.started for s in self.servers) and not any(t.done() for t in self.tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for provider, server in zip(self.providers, self.servers, strict=True):
            if server.started:
                _announce(provider)
        pending = set(self.tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._check(task)

    def _check(self, task: asyncio.Task[None]) -> None:
        exc = _failure(task, self.stopping)
        if exc is None:
            return
        provider = self.tasks[task]
        log.error(
            "%s: the port %s:%d failed, stopping every port: %s: %s",
            provider.name,
            provider.spec.host,
            provider.spec.port,
            type(exc).__name__,
            exc,
        )
        self.failures.append((provider, exc))
        self.stop()

    async def close(self) -> None:
        """Stop every port, wait for it, and release its socket."""
        self.stop()
        if self.tasks:
            await asyncio.wait(self.tasks)
        for task in self.tasks:
            if not task.cancelled():
                task.exception()  # read: asyncio would warn of it at exit
        for sock in self.sockets:
            sock.close()  # a port that died before listening still holds its socket


def _config(provider: Provider, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(provider),
        log_level=log_level,
        access_log=log_level == "info",  # -v: one line per request
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )


async def serve(
    providers: Sequence[Provider], *, log_level: str = "warning", strict: bool = False
) -> None:
    """Serve every provider until SIGINT or SIGTERM.

    Raises `PortInUse` before serving (any taken port with `strict`, else only when no port
    is free), and `PortFailed` once any port dies (after stopping the others).
    """
    providers, sockets = bind(providers, strict=strict)
    ports = _Ports(providers, sockets, log_level)
    guard_logs(Scrubber(s for p in providers for s in p.secrets))  # after uvicorn's logging set-up
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ports.stop)
    try:
        await ports.run()
    finally:
        # Cancelled or failed, no port outlives this call.
        await ports.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if ports.failures:
        exc = ports.failures[0][1]
        names = ", ".join(p.name for p, _ in ports.failures)
        raise PortFailed(
            f"{names}: port failed ({type(exc).__name__}: {exc}); every port was stopped"
        ) from exc
