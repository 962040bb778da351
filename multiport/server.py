"""All provider ports in one process: one uvicorn server per port (`ports.py`), one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .app import create_app
from .errors import MultiportError
from .limits_spec import DEFAULT_LIMITS, LimitsSpec
from .ports import Ports
from .provider import Provider
from .router_app import create_router_app
from .routing import Router

if TYPE_CHECKING:
    from .reload import Reload
from .scrub import Scrubber, guard_logs, redact_url
from .workers import worker_index

__all__ = [
    "Listener",
    "PortFailed",
    "PortInUse",
    "bind",
    "listen",
    "listeners",
    "provider_listener",
    "router_listener",
    "serve",
]

log = logging.getLogger("multiport")


class PortInUse(MultiportError):
    """A provider's port cannot be bound."""


class PortFailed(MultiportError):
    """A provider's port stopped serving on its own; every other port was stopped too."""


@dataclass(frozen=True)
class Listener:
    """One port to serve: its address, its app, and the line logged once it serves."""

    name: str
    host: str
    port: int
    summary: str
    app: Any
    limits: LimitsSpec = DEFAULT_LIMITS
    router: Router | None = None


def provider_listener(provider: Provider) -> Listener:
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
    served = [provider_listener(p) for p in providers]
    engines = {item.name: item.app.state.engine for item in served}
    served += [router_listener(router, engines) for router in routers]
    return served


def router_listener(router: Router, engines: Mapping[str, Any]) -> Listener:
    """A router's port over `engines`, the providers' engines by name."""
    rules = len(router.rules)
    summary = f"router over {', '.join(sorted(engines))} ({rules} rule(s))"
    app = create_router_app(router, engines)
    return Listener(router.name, router.host, router.port, summary, app, router.limits, router)


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
        sock = listen(listener)
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


def listen(listener: Listener) -> socket.socket | str:
    """A socket bound to the listener's port, or why there is none."""
    host, port = listener.host, listener.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if worker_index() is not None:  # `serve --workers`: the kernel spreads the connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        return f"{listener.name}: cannot listen on {host}:{port} ({exc.strerror})"
    sock.set_inheritable(True)
    return sock


async def serve(
    providers: Sequence[Provider],
    *,
    routers: Sequence[Router] = (),
    log_level: str = "warning",
    strict: bool = False,
    grace: float = 25.0,
    reload: Reload | None = None,
) -> None:
    """Serve every provider until SIGINT or SIGTERM, then stop within `grace` seconds.

    Raises `PortInUse` before serving (any taken port with `strict`, else only when no port
    is free), and `PortFailed` once any port dies (after stopping the others). With
    `reload`, the providers folder is watched (and SIGHUP reloads it): see `reload.py`.
    """
    _open_files_limit()
    if hasattr(signal, "SIGHUP"):  # a reload signal never stops the process, even mid-start
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    bound, sockets = bind(listeners(providers, routers), strict=strict)
    ports = Ports(log_level, grace)
    versions = {p.name: p.version for p in providers}
    secrets = [*(s for p in providers for s in p.secrets), *(k for r in routers for k in r.keys)]
    guard_logs(Scrubber(secrets))  # after uvicorn's logging set-up
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task[None] | None = None
    try:
        await asyncio.gather(
            *(
                ports.open(listener, sock, versions.get(listener.name, ""))
                for listener, sock in zip(bound, sockets, strict=True)
            )
        )
        if reload is not None:
            watcher = asyncio.create_task(reload.run(ports), name="reload")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stopping, ports)
        if ports.failures:
            ports.stop()
        # What start-up built lives as long as the process: the collector need not walk it.
        gc.freeze()
        await ports.done.wait()
    finally:
        # Cancelled or failed, no port outlives this call.
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await ports.close_all()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if ports.failures:
        exc = ports.failures[0][1]
        names = ", ".join(p.name for p, _ in ports.failures)
        raise PortFailed(
            f"{names}: port failed ({type(exc).__name__}: {exc}); every port was stopped"
        ) from exc


def _open_files_limit() -> None:
    """Raise the soft limit of open files to the hard one: every connection is a file, and
    each port may hold `limits.connections` of them."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _stopping(ports: Ports) -> None:
    if ports.stopping:
        log.warning("multiport: stopping now, without waiting")
        ports.force()
        return
    busy = sum(sum(p.switch.in_flight.values()) for p in ports.served.values())
    log.warning(
        "multiport: stopping; %d request(s) in flight may finish within %g s", busy, ports.grace
    )
    ports.stop()
