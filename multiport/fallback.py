"""A router's requests: the rule's candidates in order, with retries and circuit breaking.

A candidate that fails before its first byte reaches the client (refused, timed out,
408/429/5xx/529, unconfigured, or a model its catalog lacks) gives way to the next one,
on the same provider or another. Once a stream is committed nothing is retried: a later
failure ends it with an Anthropic `error` event (`relay.py`). Retries use tenacity;
circuit breaking is in `breaker.py`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import msgspec
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from . import metrics
from .admission import check_model, check_request, offload
from .anthropic_wire import MessagesRequest, decode_messages
from .breaker import Breaker
from .engine import Answer, Engine
from .errors import (
    ApiError,
    AuthenticationError,
    NotFound,
    Overloaded,
    UpstreamError,
    UpstreamStatusError,
    UpstreamStreamError,
    UpstreamTimeout,
)
from .requestlog import Record
from .router_spec import RetrySpec
from .routing import Candidate, Router
from .scrub import Scrubber, clean, client_key

__all__ = ["RouterEngine"]

log = logging.getLogger("multiport.router")
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504, 529})
_CLIENT_KEYS = frozenset({"x-api-key", "authorization"})


def _moves_on(exc: BaseException) -> bool:
    """A failure another candidate may not have."""
    if isinstance(exc, UpstreamStatusError):
        # 404: this provider lacks the model; 401/403: its credentials are refused.
        return exc.upstream_status in _RETRYABLE or exc.upstream_status in (401, 403, 404)
    return isinstance(exc, UpstreamError | AuthenticationError | NotFound | Overloaded)


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
        self.listed = {str(c): c for rule in router.rules for c in rule.candidates}
        metrics.watch_circuits(router.name, self.breaker, list(self.listed))
        reached = {c.provider for c in self.listed.values()}
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
        self,
        body: bytes,
        client_headers: Mapping[str, str],
        request_id: str = "",
        record: Record | None = None,
    ) -> Answer:
        record = record or Record(self.name, "messages", request_id)
        request = await offload(len(body), decode_messages, body)
        record.model = request.model
        where = f"router {self.router.name}"
        check_model(request.model, self.router.limits, where)
        check_request(request, self.router.limits, where)
        name, candidates = await offload(len(body), self._candidates, request)
        # The router's own key stays here: each provider uses its own credentials.
        headers = {k: v for k, v in client_headers.items() if k.lower() not in _CLIENT_KEYS}
        deadline = time.monotonic() + self.retry.budget
        tried: list[_Attempt] = []
        last: ApiError | None = None
        for index, candidate in enumerate(candidates):
            record.fallbacks = index  # each candidate after the first is a fallback taken
            skip = self._skip(candidate)
            if skip:
                tried.append(_Attempt(candidate, skip))
                continue
            try:
                answer = await self._call(candidate, body, request, headers, record, deadline)
            except BaseException as exc:
                if not isinstance(exc, ApiError):
                    self.breaker.release(str(candidate))  # cancelled, or a bug: no verdict
                    raise
                if not _moves_on(exc):
                    self.breaker.success(str(candidate))  # it answered: the request is at fault
                    raise
                self.breaker.failure(str(candidate))
                tried.append(_Attempt(candidate, exc.message))
                last = exc
                log.warning(
                    "%s %s: %s failed, next candidate: %s",
                    self.router.name,
                    record.request_id,
                    candidate,
                    clean(exc.message, self.scrubber_for(client_headers)),
                )
                if time.monotonic() >= deadline:
                    break
                continue
            self.breaker.success(str(candidate))
            return answer
        raise _exhausted(self.router.name, name, tried, last, self.breaker.wait())

    def _candidates(self, request: MessagesRequest) -> tuple[str, tuple[Candidate, ...]]:
        """The rule's name and candidates; a `provider/model` the client names is itself."""
        # Only what the router lists (/v1/models) is a name: its breaker state stays bounded.
        named = self.listed.get(request.model)
        if named is not None:
            return "explicit", (named,)
        rule = self.router.pick(self.router.features(request))
        if rule is None:
            raise NotFound(
                f"no rule of router {self.router.name} matches model {request.model!r}; "
                "add a rule without conditions as the last one"
            )
        return rule.name, rule.candidates

    def _skip(self, candidate: Candidate) -> str:
        """Why a candidate is not called now, or ''."""
        engine = self.engines.get(candidate.provider)
        if engine is None:
            return "provider not served"
        if engine.provider.missing_credentials:
            return f"no credentials: set {', '.join(engine.provider.missing_credentials)}"
        catalog = engine.catalog
        listed = catalog.source not in ("none", "fallback") and catalog.models
        if listed and not catalog.has(candidate.model):
            return "not in the provider's catalog"
        if not self.breaker.acquire(str(candidate)):
            return "circuit open"
        return ""

    async def _call(
        self,
        candidate: Candidate,
        body: bytes,
        request: MessagesRequest,
        client_headers: Mapping[str, str],
        record: Record,
        deadline: float,
    ) -> Answer:
        engine = self.engines[candidate.provider]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=lambda state: self._wait(state, deadline),
            retry=retry_if_exception(lambda exc: self._again(exc, deadline)),
            reraise=True,
        )
        async for attempt in retrying:
            if attempt.retry_state.attempt_number > 1:
                record.retries += 1
            with attempt:
                limit = min(self.retry.attempt_timeout, max(0.0, deadline - time.monotonic()))
                try:
                    async with asyncio.timeout(limit):
                        answer = await engine.forward(
                            body,
                            request,
                            candidate.model,
                            client_headers,
                            record.request_id,
                            record,
                        )
                        return await _first_event(answer)
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"{candidate} did not answer within {limit:.0f} s"
                    ) from None
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _again(self, exc: BaseException, deadline: float) -> bool:
        """Call the same candidate again: a passing failure, and time left for it."""
        if not _retried(exc, self.retry):
            return False
        hint = _retry_after(exc) if isinstance(exc, UpstreamStatusError) else None
        return time.monotonic() + (hint or 0.0) < deadline

    def _wait(self, state: RetryCallState, deadline: float) -> float:
        """Retry-After when the upstream gave one (within the cap), else backoff with jitter;
        never past the budget."""
        exc = state.outcome.exception() if state.outcome else None
        hint = _retry_after(exc) if isinstance(exc, UpstreamStatusError) else None
        if hint is not None:
            wait = min(hint, self.retry.max_retry_after)
        else:
            base = self.retry.backoff * 2 ** (state.attempt_number - 1)
            wait = min(self.retry.max_backoff, base) * random.uniform(0.5, 1.0)
        return float(max(0.0, min(wait, deadline - time.monotonic())))


async def _first_event(answer: Answer) -> Answer:
    """A stream's first upstream event, awaited before the client sees a byte.

    A 200 whose stream fails at once (an error event first, an empty body) is a failed
    candidate like any other, not a committed stream. Pings while the upstream is silent
    do not commit it: the caller's attempt timeout still runs.
    """
    if answer.stream is None:
        return answer
    stream = answer.stream
    frames: list[bytes] = []
    async for frame in stream:
        frames.append(frame)
        if frame.startswith(b"event: error"):
            await stream.aclose()  # type: ignore[attr-defined]
            raise UpstreamStreamError(_error_text(frame))
        if not frame.startswith((b"event: ping", b"event: message_start")):
            break  # the upstream's first real event: committed
    return _replayed(answer, frames, stream)


def _replayed(answer: Answer, frames: list[bytes], rest: AsyncIterator[bytes]) -> Answer:
    async def stream() -> AsyncIterator[bytes]:
        try:
            for frame in frames:
                yield frame
            async for frame in rest:
                yield frame
        finally:
            await rest.aclose()  # type: ignore[attr-defined]

    return Answer(stream=stream(), headers=answer.headers)


def _error_text(frame: bytes) -> str:
    try:
        data = msgspec.json.decode(frame.split(b"data: ", 1)[1])
        return str(data["error"]["message"])
    except (IndexError, KeyError, TypeError, msgspec.DecodeError):
        return "the stream failed at its first event"


def _exhausted(
    router: str, rule: str, tried: list[_Attempt], last: ApiError | None, wait: float | None
) -> ApiError:
    """The error for a request no candidate answered.

    The last failure's status says what happened (a 429 stays a 429, with its Retry-After);
    a credential problem is the gateway's (502); when every candidate was skipped it is a
    503 saying when the first circuit half-opens.
    """
    lines = "; ".join(f"{a.candidate}: {a.error}" for a in tried)
    message = f"router {router}, rule {rule}: every candidate failed ({lines})"
    if isinstance(last, UpstreamStatusError) and last.upstream_status not in (401, 403):
        error = UpstreamStatusError(message, upstream_status=last.upstream_status)
        error.retry_after = last.retry_after
        return error
    if last is not None:
        status = 502 if isinstance(last, AuthenticationError) else last.status_code
        return UpstreamError(message, status_code=status)
    skipped = UpstreamStatusError(message, upstream_status=503)
    skipped.retry_after = str(max(1, round(wait))) if wait is not None else None
    return skipped
