"""Circuit breaking: a candidate that keeps failing is skipped for a while, then tried once.

A few lines of state rather than a library: pybreaker's async support is Tornado's, not
asyncio's, and the router needs the state per candidate in `/health` anyway.
"""

from __future__ import annotations

import datetime
import time

from .router_spec import BreakerSpec

__all__ = ["Breaker"]


class Breaker:
    """Per candidate: closed, open for `cool_down` after `failures` in a row, then half-open."""

    def __init__(self, spec: BreakerSpec) -> None:
        self.spec = spec
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._trying: set[str] = set()  # half-open candidates with their one trial under way

    def state(self, key: str) -> str:
        until = self._open_until.get(key)
        if until is None:
            return "closed"
        return "open" if time.monotonic() < until else "half-open"

    def acquire(self, key: str) -> bool:
        """May `key` be called now? Half-open lets one call through at a time."""
        state = self.state(key)
        if state == "closed":
            return True
        if state == "open" or key in self._trying:
            return False
        self._trying.add(key)
        return True

    def release(self, key: str) -> None:
        """A trial that ended with neither verdict (the client left): another may try."""
        self._trying.discard(key)

    def success(self, key: str) -> None:
        self._trying.discard(key)
        self._failures.pop(key, None)
        self._open_until.pop(key, None)

    def failure(self, key: str) -> None:
        self._trying.discard(key)
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self.spec.failures or key in self._open_until:
            # Half-open and failed again, or too many in a row: cool down (again).
            self._open_until[key] = time.monotonic() + self.spec.cool_down

    def wait(self) -> float | None:
        """Seconds until the first open circuit half-opens, or None."""
        now = time.monotonic()
        waits = [until - now for until in self._open_until.values() if until > now]
        return min(waits) if waits else None

    def report(self) -> dict[str, dict[str, object]]:
        """Every candidate that has failed: its state, failures, and when it is tried again."""
        now, wall = time.monotonic(), time.time()
        report: dict[str, dict[str, object]] = {}
        for key in sorted(set(self._failures) | set(self._open_until)):
            until = self._open_until.get(key)
            report[key] = {
                "state": self.state(key),
                "failures": self._failures.get(key, 0),
                "retry_in_seconds": round(max(0.0, (until or now) - now), 1),
                "retry_at": _iso(wall + max(0.0, until - now)) if until else None,
            }
        return report


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
