"""The ports a process serves, each its own uvicorn server, opened, swapped and closed live.

Opening a port starts its app's lifespan, then its server on a socket bound beforehand.
Swapping points the port's `Switch` at a new app; the old app closes once its last request
ends. Closing a port stops its server gracefully (requests in flight finish, up to the
shutdown deadline) and then its app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from .guard import GuardedProtocol, protocol_for
from .lifecycle import AppLife, Switch

__all__ = ["Ports", "Served"]

log = logging.getLogger("multiport")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # One handler for the whole process stops every port together.
        yield


@dataclass
class Served:
    """One port being served."""

    listener: Any  # server.Listener
    version: str
    sock: socket.socket
    switch: Switch
    life: AppLife
    server: _Server
    protocol: type[GuardedProtocol]
    task: asyncio.Task[None] | None = None
    closing: bool = field(default=False)


class Ports:
    """Every port of the process; `failures` holds the ports that died on their own."""

    def __init__(self, log_level: str, grace: float) -> None:
        self.log_level = log_level
        self.grace = grace
        self.served: dict[str, Served] = {}
        self.stopping = False
        self.failures: list[tuple[Any, BaseException]] = []
        self.done = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    async def open(self, listener: Any, sock: socket.socket, version: str = "") -> bool:
        """Serve `listener` on `sock`; False (logged, socket closed) when it cannot start."""
        life = AppLife(listener.app, listener.name)
        try:
            await life.start()
        except Exception as exc:
            log.error("%s: cannot start: %s", listener.name, exc)
            sock.close()
            return False
        switch = Switch(listener.app)
        protocol = protocol_for(listener.name, listener.limits)
        server = _Server(self._config(switch, protocol, listener))
        port = Served(listener, version, sock, switch, life, server, protocol)
        port.task = asyncio.create_task(self._serve(port), name=listener.name)
        self.served[listener.name] = port
        while not server.started and not port.task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            log.info(
                "%-14s http://%s:%d → %s",
                listener.name,
                listener.host,
                listener.port,
                listener.summary,
            )
        return server.started

    async def swap(self, listener: Any, version: str) -> None:
        """Serve `listener`'s app on the port of the same name, in flight ones finishing."""
        port = self.served[listener.name]
        life = AppLife(listener.app, listener.name)
        await life.start()
        old_app, old_life = port.switch.swap(listener.app), port.life
        _carry_gate(old_app, listener.app)
        port.protocol.limits = listener.limits
        port.server.config.timeout_keep_alive = listener.limits.keep_alive_seconds
        port.listener, port.life, port.version = listener, life, version
        self._later(self._retire(port.switch, old_app, old_life))

    async def close(self, name: str) -> None:
        """Stop one port: no new connection, requests in flight finish, then the app."""
        port = self.served.pop(name)
        port.closing = True
        port.switch.stopping = True
        port.server.should_exit = True
        if port.task is not None:
            await asyncio.wait({port.task})
        await port.life.stop()
        port.sock.close()

    def force(self) -> None:
        """Stop every port at once, without waiting for requests in flight."""
        for port in self.served.values():
            port.server.force_exit = True
        self.stop()

    def stop(self) -> None:
        """Stop every port (SIGINT, SIGTERM, or a port that died)."""
        self.stopping = True
        for port in self.served.values():
            port.switch.stopping = True
            port.server.should_exit = True
        self.done.set()

    async def close_all(self) -> None:
        self.stop()
        for name in list(self.served):
            await self.close(name)
        for task in list(self._background):
            await task

    async def _retire(self, switch: Switch, app: Any, life: AppLife) -> None:
        # Requests in flight finish on the app they began on, however long (each is bounded
        # by its own limits and timeouts); a shutdown ends them at its deadline.
        await switch.drained(app)
        await life.stop()

    def _later(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _serve(self, port: Served) -> None:
        try:
            await port.server.serve(sockets=[port.sock])
        except SystemExit as exc:
            failure: BaseException = RuntimeError(
                f"the app failed to start (uvicorn exit {exc.code})"
            )
        except Exception as exc:
            failure = exc
        else:
            if port.closing or self.stopping:
                return
            failure = RuntimeError("the port stopped serving without being asked to")
        listener = port.listener
        log.error(
            "%s: the port %s:%d failed, stopping every port: %s: %s",
            listener.name,
            listener.host,
            listener.port,
            type(failure).__name__,
            failure,
        )
        self.failures.append((listener, failure))
        self.stop()

    def _config(
        self, switch: Switch, protocol: type[GuardedProtocol], listener: Any
    ) -> uvicorn.Config:
        return uvicorn.Config(
            switch,
            http=protocol,
            timeout_keep_alive=listener.limits.keep_alive_seconds,
            log_level=self.log_level,
            access_log=False,  # the request log (requestlog.py) writes one line per request
            log_config=None,  # uvicorn's lines go through the process's handler (logformat.py)
            lifespan="off",  # each app's lifespan is run by `AppLife`, so a swap can close it
            timeout_graceful_shutdown=self.grace,  # type: ignore[arg-type,unused-ignore]
            server_header=False,
        )


def _carry_gate(old: Any, new: Any) -> None:
    """A provider's new version counts the requests still in flight on the old one."""
    before, after = getattr(old.state, "engine", None), getattr(new.state, "engine", None)
    if before is not None and after is not None:
        gate = before.gate
        gate.limit = after.gate.limit
        after.gate = gate
