"""Hot reload: the providers folder watched (and SIGHUP), each port brought to its file.

A new valid file opens its port; a changed one is swapped while requests in flight finish
on the old version; a file with errors is reported (file:line) and its old version keeps
serving; a removed file's port drains and closes. Router ports are rebuilt whenever
anything changes, so they reach the providers' current engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from .compile import LoadResult, load_providers
from .inbound import refuse_open
from .ports import Ports
from .provider import Provider
from .routing import Router
from .scrub import Scrubber, guard_logs
from .server import Listener, listen, provider_listener, router_listener

__all__ = ["Reload"]

log = logging.getLogger("multiport")

_SETTLE = 0.2  # seconds of quiet after a change before loading: editors write in steps


class Reload:
    """Reload `folder` on SIGHUP, and on its changes when `watch`; serve only `only` when given."""

    def __init__(
        self,
        folder: str,
        only: Sequence[str] | None = None,
        *,
        watch: bool = True,
        allow_open: bool = False,
    ) -> None:
        self.folder = folder
        self.watch = watch
        self.allow_open = allow_open
        self.only = set(only or ())
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def run(self, ports: Ports) -> None:
        """Reload on SIGHUP and, when watching, on every change of the folder; until cancelled."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._wake.set)
        watch = asyncio.create_task(self._watch(), name="watch-providers") if self.watch else None
        try:
            while True:
                await self._wake.wait()
                await asyncio.sleep(_SETTLE)
                self._wake.clear()
                await self.reload(ports)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the default: it would kill us
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _watch(self) -> None:
        from watchfiles import awatch

        async for _ in awatch(self.folder, debounce=100, step=50):
            self._wake.set()

    async def reload(self, ports: Ports) -> None:
        """Bring every port to what the folder now says."""
        async with self._lock:
            result = await asyncio.to_thread(load_providers, [self.folder])
            _report(result)
            broken = {
                f.name for f in result.files if any(p.severity == "error" for p in f.problems)
            }
            providers = [p for p in result.providers if self._wanted(p.name)]
            routers = [r for r in result.routers if self._wanted(r.name)]
            # A port beyond loopback without keys is refused, as at start (named on stderr).
            refused = {p.name for p in providers if refuse_open([p], [], allow=self.allow_open)}
            refused |= {r.name for r in routers if refuse_open([], [r], allow=self.allow_open)}
            providers = [p for p in providers if p.name not in refused]
            routers = [r for r in routers if r.name not in refused]
            broken |= refused
            # Requests of the versions before may still log: their secrets stay scrubbed.
            serving = [p.switch.app.state for p in ports.served.values()]
            before = [
                s for state in serving if "engine" in state for s in state.engine.provider.secrets
            ]
            keys = [k for r in routers for k in r.keys]
            guard_logs(Scrubber([*before, *keys, *(s for p in providers for s in p.secrets)]))
            changed = await self._providers(ports, providers, broken)
            await self._routers(ports, routers, broken, changed)
            # As at start, what now serves is frozen out of the collector's walks; versions
            # retired since the last reload are thawed and collected first.
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _wanted(self, name: str) -> bool:
        return not self.only or name in self.only

    async def _providers(self, ports: Ports, providers: list[Provider], broken: set[str]) -> bool:
        changed = False
        names = {p.name for p in providers}
        for name, port in list(ports.served.items()):
            if port.listener.router is None and name not in names and name not in broken:
                log.warning("%s: its file is gone; closing its port", name)
                await ports.close(name)
                changed = True
        for provider in providers:
            changed |= await _bring(ports, provider_listener(provider), provider.version)
        for name in broken & set(ports.served):
            log.error(
                "%s: its file has errors (above); the version loaded before keeps serving", name
            )
        return changed

    async def _routers(
        self, ports: Ports, routers: list[Router], broken: set[str], changed: bool
    ) -> None:
        engines = {
            name: port.switch.app.state.engine
            for name, port in ports.served.items()
            if port.listener.router is None
        }
        names = {r.name for r in routers}
        for name, port in list(ports.served.items()):
            if port.listener.router is not None and name not in names and name not in broken:
                log.warning("%s: its file is gone; closing its port", name)
                await ports.close(name)
        for router in routers:
            version = _router_version(router, engines)
            current = ports.served.get(router.name)
            if current is not None and current.version == version and not changed:
                continue
            await _bring(ports, router_listener(router, engines), version)


async def _bring(ports: Ports, listener: Listener, version: str) -> bool:
    """Open, swap or leave the port of `listener`; True when it changed."""
    port = ports.served.get(listener.name)
    if port is not None and port.version == version:
        return False
    if port is not None and (port.listener.host, port.listener.port) == (
        listener.host,
        listener.port,
    ):
        await ports.swap(listener, version)
        log.warning("%s: reloaded (version %s)", listener.name, version)
        return True
    sock = listen(listener)  # the new address first: if it is taken, the old one serves on
    if isinstance(sock, str):
        kept = "; the version before keeps serving" if port is not None else ""
        log.error("%s; not serving it%s", sock, kept)
        return False
    if port is not None:
        await ports.close(listener.name)
    await ports.open(listener, sock, version)
    return True


def _router_version(router: Router, engines: dict[str, object]) -> str:
    digest = hashlib.sha256(Path(router.file).read_bytes())
    digest.update(",".join(sorted(engines)).encode())
    return digest.hexdigest()[:12]


def _report(result: LoadResult) -> None:
    for problem in result.problems:
        level = logging.ERROR if problem.severity == "error" else logging.WARNING
        log.log(level, "%s", problem)
