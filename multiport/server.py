"""All provider ports in one process: one uvicorn server per port, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator, Sequence

import uvicorn

from .app import create_app
from .compile import Provider

__all__ = ["serve"]

log = logging.getLogger("multiport")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # One handler for the whole process stops every port together (see `serve`).
        yield


async def serve(providers: Sequence[Provider], *, log_level: str = "warning") -> None:
    """Serve every provider until SIGINT or SIGTERM."""
    servers = []
    for provider in providers:
        config = uvicorn.Config(
            create_app(provider),
            host=provider.spec.host,
            port=provider.spec.port,
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
        asyncio.create_task(s.serve(), name=p.name) for s, p in zip(servers, providers, strict=True)
    ]
    while not all(s.started for s in servers) and not any(t.done() for t in tasks):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    failed = [p.name for s, p in zip(servers, providers, strict=True) if not s.started]
    if failed:
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise SystemExit(f"multiport: could not start {', '.join(failed)}: is the port in use?")
    for server, provider in zip(servers, providers, strict=True):
        if server.started:
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
