"""A port's app over time: swapped on reload, started and stopped, ended cleanly at shutdown.

`Switch` is the ASGI app uvicorn serves on a port. It passes each request to the port's
current app; a reload points it at a new app while requests already in flight finish on
the one they started on. `AppLife` runs an app's lifespan (its upstream client and catalog
task) from the outside, so an app swapped out is closed once its last request ends.

A request cancelled because its client left ends quietly. One cancelled because the
shutdown deadline passed ends with an Anthropic error: a 503 body when nothing was sent
yet, an `error` event when its stream had begun.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from typing import Any

from .guard import CLIENT_GONE
from .scrub import Scrubber, error_body, error_event

__all__ = ["SHUTDOWN", "AppLife", "Switch"]

log = logging.getLogger("multiport")

SHUTDOWN = "multiport: shutting down"
_MESSAGE = (
    "multiport is shutting down and this request did not finish before its deadline; "
    "retry it (another instance may answer)"
)
_NO_SECRETS = Scrubber(())


class Switch:
    """The app of one port: requests go to `app`, which a reload may replace."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stopping = False
        self.in_flight: collections.Counter[int] = collections.Counter()
        self._drained: dict[int, asyncio.Event] = {}

    def swap(self, app: Any) -> Any:
        """Send new requests to `app`; the previous app, for `drained` then closing."""
        previous, self.app = self.app, app
        return previous

    async def drained(self, app: Any) -> None:
        """Return once no request runs on `app`."""
        key = id(app)
        if self.in_flight[key]:
            event = self._drained.setdefault(key, asyncio.Event())
            await event.wait()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.app
        key = id(app)
        self.in_flight[key] += 1
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await app(scope, receive, tracked)
        except asyncio.CancelledError as exc:
            if exc.args == (CLIENT_GONE,):
                return
            if not self.stopping or scope.get("type") != "http":
                raise
            await _end_at_shutdown(send, started)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]
                event = self._drained.pop(key, None)
                if event is not None:
                    event.set()


async def _end_at_shutdown(send: Any, started: bool) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone already
        if not started:
            request_id = "req_" + secrets.token_hex(12)
            body = error_body("overloaded_error", _MESSAGE, request_id, _NO_SECRETS)
            headers = [
                (b"content-type", b"application/json"),
                (b"retry-after", b"1"),
                (b"request-id", request_id.encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            frame = error_event("overloaded_error", _MESSAGE, _NO_SECRETS)
            await send({"type": "http.response.body", "body": frame, "more_body": False})


class AppLife:
    """An ASGI app's lifespan, driven from outside: `start`, then `stop`."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.name = name
        self._inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(
            self.app(scope, self._inbox.get, self._outbox.put), name=f"lifespan-{self.name}"
        )
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"{self.name}: the app failed to start: {reply.get('message')}")

    async def stop(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._outbox.get(), 10)
        except TimeoutError:
            log.warning("%s: the app did not stop within 10 s", self.name)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
