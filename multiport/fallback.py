"""A router's requests: the rule's candidates in order, with retries and circuit breaking.

A candidate that fails before its first byte reaches the client (refused, timed out,
408/429/5xx/529, unconfigured, or a model its catalog lacks) gives way to the next one,
on the same provider or another. Once a stream is committed nothing is retried: a later
failure ends it with an Anthropic `error` event (`relay.py`). Retries use tenacity;
circuit breaking is a few lines of state, kept here (pybreaker's async support is
Tornado's, not asyncio's).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .anthropic_wire import MessagesRequest, decode_messages
from .engine import Answer, Engine
from .errors import (
    ApiError,
    AuthenticationError,
    NotFound,
    UpstreamError,
    UpstreamStatusError,
)
from .router_spec import BreakerSpec, RetrySpec
from .routing import Candidate, Router, features_of
from .scrub import Scrubber, clean, client_key

__all__ = ["Breaker", "RouterEngine"]

log = logging.getLogger("multiport.router")
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504, 529})


class Breaker:
    """Per candidate: closed, open for `cool_down` after `failures` in a row, then half-open."""

    def __init__(self, spec: BreakerSpec) -> None:
        self.spec = spec
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def state(self, key: str) -> str:
        until = self._open_until.get(key)
        if until is None:
            return "closed"
        return "open" if time.monotonic() < until else "half-open"

    def allows(self, key: str) -> bool:
        return self.state(key) != "open"

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
        self._open_until.pop(key, None)

    def failure(self, key: str) -> None:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self.spec.failures or key in self._open_until:
            # Half-open and failed again, or too many in a row: cool down (again).
            self._open_until[key] = time.monotonic() + self.spec.cool_down

    def report(self) -> dict[str, dict[str, object]]:
        """Every candidate that has failed: its state, failures, and when it opens again."""
        now = time.monotonic()
        return {
            key: {
                "state": self.state(key),
                "failures": self._failures.get(key, 0),
                "retry_in_seconds": round(max(0.0, self._open_until.get(key, now) - now), 1),
            }
            for key in sorted(set(self._failures) | set(self._open_until))
        }


def _moves_on(exc: BaseException) -> bool:
    """A failure another candidate may not have."""
    if isinstance(exc, UpstreamStatusError):
        return exc.upstream_status in _RETRYABLE or exc.upstream_status in (401, 403)
    return isinstance(exc, UpstreamError | AuthenticationError | NotFound)


def _retried(exc: BaseException, retry: RetrySpec) -> bool:
    """A failure worth calling the same candidate again for."""
    if not isinstance(exc, UpstreamError) or isinstance(exc, AuthenticationError):
        return False
    if isinstance(exc, UpstreamStatusError):
        if exc.upstream_status not in _RETRYABLE:
            return False
        wait = _retry_after(exc)
        return wait is None or wait <= retry.max_retry_after
    return True


def _retry_after(exc: UpstreamStatusError) -> float | None:
    try:
        return float(exc.retry_after) if exc.retry_after else None
    except ValueError:
        return None  # an HTTP date: treated as no hint


@dataclass
class _Attempt:
    candidate: Candidate
    error: str


class RouterEngine:
    """Everything a router port does, given the engines of the providers it routes to."""

    def __init__(self, router: Router, engines: Mapping[str, Engine]) -> None:
        self.router = router
        self.engines = engines
        self.breaker = Breaker(router.spec.breaker)
        self.retry = router.spec.retry
        reached = {c.provider for rule in router.rules for c in rule.candidates}
        self.scrubber = Scrubber(
            s for name in reached if name in engines for s in engines[name].provider.secrets
        )

    @property
    def name(self) -> str:
        return self.router.name

    def scrubber_for(self, client_headers: Mapping[str, str]) -> Scrubber:
        """The secrets of every provider the router reaches, and the key this client sent."""
        return self.scrubber.with_secret(client_key(client_headers))

    async def messages(
        self, body: bytes, client_headers: Mapping[str, str], request_id: str = ""
    ) -> Answer:
        request = decode_messages(body)
        rule = self.router.pick(features_of(request))
        if rule is None:
            raise NotFound(
                f"no rule of router {self.router.name} matches model {request.model!r}; "
                "add a rule without conditions as the last one"
            )
        deadline = time.monotonic() + self.retry.budget
        tried: list[_Attempt] = []
        last: ApiError | None = None
        for candidate in rule.candidates:
            key = str(candidate)
            skip = self._skip(candidate)
            if skip:
                tried.append(_Attempt(candidate, skip))
                continue
            try:
                answer = await self._call(
                    candidate, body, request, client_headers, request_id, deadline
                )
            except ApiError as exc:
                if not _moves_on(exc):
                    raise
                self.breaker.failure(key)
                tried.append(_Attempt(candidate, exc.message))
                last = exc
                log.warning(
                    "%s %s: %s failed, next candidate: %s",
                    self.router.name,
                    request_id,
                    key,
                    clean(exc.message, self.scrubber_for(client_headers)),
                )
                if time.monotonic() >= deadline:
                    break
                continue
            self.breaker.success(key)
            return answer
        raise _exhausted(self.router.name, rule.name, tried, last)

    def _skip(self, candidate: Candidate) -> str:
        """Why a candidate is not called now, or ''."""
        engine = self.engines.get(candidate.provider)
        if engine is None:
            return "provider not served"
        if not self.breaker.allows(str(candidate)):
            return "circuit open"
        catalog = engine.catalog
        if (
            catalog.source not in ("none", "fallback")
            and catalog.models
            and not catalog.has(candidate.model)
        ):
            return "not in the provider's catalog"
        return ""

    async def _call(
        self,
        candidate: Candidate,
        body: bytes,
        request: MessagesRequest,
        client_headers: Mapping[str, str],
        request_id: str,
        deadline: float,
    ) -> Answer:
        engine = self.engines[candidate.provider]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(
                lambda exc: _retried(exc, self.retry) and time.monotonic() < deadline
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await engine.forward(
                    body, request, candidate.model, client_headers, request_id
                )
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the upstream gave one (within the cap), else backoff with jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamStatusError):
            hint = _retry_after(exc)
            if hint is not None:
                return min(hint, self.retry.max_retry_after)
        base = self.retry.backoff * 2 ** (state.attempt_number - 1)
        return float(min(self.retry.max_backoff, base) * random.uniform(0.5, 1.0))


def _exhausted(router: str, rule: str, tried: list[_Attempt], last: ApiError | None) -> ApiError:
    """The error for a request every candidate failed: the last failure's status."""
    lines = "; ".join(f"{a.candidate}: {a.error}" for a in tried)
    message = f"router {router}, rule {rule}: every candidate failed ({lines})"
    if isinstance(last, UpstreamStatusError):
        error = UpstreamStatusError(message, upstream_status=last.upstream_status)
        error.retry_after = last.retry_after
        return error
    return ApiError(message, status_code=last.status_code if last is not None else 503)
