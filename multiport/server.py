"""All provider ports in one process: one uvicorn server per port, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from .app import create_app
from .errors import MultiportError
from .guard import guarded_app, protocol_for
from .limits_spec import DEFAULT_LIMITS, LimitsSpec
from .provider import Provider
from .router_app import create_router_app
from .routing import Router
from .scrub import Scrubber, guard_logs, redact_url

__all__ = ["Listener", "PortFailed", "PortInUse", "bind", "listeners", "serve"]

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


@dataclass(frozen=True)
class Listener:
    """One port to serve: its address, its app, and the line logged once it serves."""

    name: str
    host: str
    port: int
    summary: str
    app: Any
    limits: LimitsSpec = DEFAULT_LIMITS


def _provider_listener(provider: Provider) -> Listener:
    missing = (
        f"  (credentials missing: set {', '.join(provider.missing_credentials)})"
        if provider.missing_credentials
        else ""
    )
    summary = f"{redact_url(provider.base_url)} ({provider.wire.dialect}){missing}"
    spec = provider.spec
    return Listener(provider.name, spec.host, spec.port, summary, create_app(provider), spec.limits)


def listeners(providers: Sequence[Provider], routers: Sequence[Router] = ()) -> list[Listener]:
    """Every port's listener; routers reach the engines of the providers served with them."""
    served = [_provider_listener(p) for p in providers]
    engines = {item.name: item.app.state.engine for item in served}
    for router in routers:
        rules = len(router.rules)
        summary = f"router over {', '.join(sorted(engines))} ({rules} rule(s))"
        app = create_router_app(router, engines)
        served.append(Listener(router.name, router.host, router.port, summary, app, router.limits))
    return served


def bind(
    ports: Sequence[Listener], *, strict: bool = True
) -> tuple[list[Listener], list[socket.socket]]:
    """Bind every port before serving any; the listeners bound and their sockets.

    A taken port is one clear line. With `strict`, or when no port could be bound, it is
    an error (`PortInUse`); otherwise that port is left out and the others served.
    """
    bound: list[Listener] = []
    sockets: list[socket.socket] = []
    problems = []
    for listener in ports:
        sock = _listen(listener)
        if isinstance(sock, str):
            problems.append(sock)
            continue
        bound.append(listener)
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


def _listen(listener: Listener) -> socket.socket | str:
    """A socket bound to the listener's port, or why there is none."""
    host, port = listener.host, listener.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        return f"{listener.name}: cannot listen on {host}:{port} ({exc.strerror})"
    sock.set_inheritable(True)
    return sock


class _Ports:
    """Every provider's uvicorn server on its bound socket, stopped together."""

    def __init__(
        self, ports: Sequence[Listener], sockets: list[socket.socket], log_level: str
    ) -> None:
        self.ports = ports
        self.sockets = sockets
        self.servers = [_Server(_config(p, log_level)) for p in ports]
        self.stopping = False
        self.failures: list[tuple[Listener, BaseException]] = []
        self.tasks: dict[asyncio.Task[None], Listener] = {}

    def stop(self) -> None:
        self.stopping = True
        for server in self.servers:
            server.should_exit = True

    async def run(self) -> None:
        self.tasks = {
            asyncio.create_task(_serve_port(s, sock), name=p.name): p
            for s, sock, p in zip(self.servers, self.sockets, self.ports, strict=True)
        }
        while not all(s.started for s in self.servers) and not any(t.done() for t in self.tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for listener, server in zip(self.ports, self.servers, strict=True):
            if server.started:
                log.info(
                    "%-14s http://%s:%d → %s",
                    listener.name,
                    listener.host,
                    listener.port,
                    listener.summary,
                )
        pending = set(self.tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._check(task)

    def _check(self, task: asyncio.Task[None]) -> None:
        exc = _failure(task, self.stopping)
        if exc is None:
            return
        listener = self.tasks[task]
        log.error(
            "%s: the port %s:%d failed, stopping every port: %s: %s",
            listener.name,
            listener.host,
            listener.port,
            type(exc).__name__,
            exc,
        )
        self.failures.append((listener, exc))
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


def _config(listener: Listener, log_level: str) -> uvicorn.Config:
    limits = listener.limits
    return uvicorn.Config(
        guarded_app(listener.app),
        http=protocol_for(listener.name, limits),
        timeout_keep_alive=limits.keep_alive_seconds,  # type: ignore[arg-type]
        log_level=log_level,
        access_log=False,  # the request log (requestlog.py) writes one line per request
        log_config=None,  # uvicorn's lines go through the process's handler (logformat.py)
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )


async def serve(
    providers: Sequence[Provider],
    *,
    routers: Sequence[Router] = (),
    log_level: str = "warning",
    strict: bool = False,
) -> None:
    """Serve every provider until SIGINT or SIGTERM.

    Raises `PortInUse` before serving (any taken port with `strict`, else only when no port
    is free), and `PortFailed` once any port dies (after stopping the others).
    """
    bound, sockets = bind(listeners(providers, routers), strict=strict)
    ports = _Ports(bound, sockets, log_level)
    secrets = [*(s for p in providers for s in p.secrets), *(k for r in routers for k in r.keys)]
    guard_logs(Scrubber(secrets))  # after uvicorn's logging set-up
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
