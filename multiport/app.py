"""The Litestar app for one provider port: routes, error bodies, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import msgspec
from litestar import Litestar, Request, Response, get, head, post
from litestar.exceptions import HTTPException
from litestar.response import Stream
from litestar.types import ExceptionHandlersMap

from . import __version__, metrics
from .app_reports import CLAUDE_ALIASES, health_report, info_report, model_list
from .catalog import Catalog
from .engine import Answer, Engine
from .errors import ApiError, UpstreamError, UpstreamStatusError, error_type_for_status
from .inbound import key_check
from .provider import Provider
from .requestlog import Record, request_id_for
from .scrub import Scrubber, clean, error_body
from .upstream import Upstream

__all__ = ["CLAUDE_ALIASES", "create_app"]

log = logging.getLogger("multiport.app")
_encode = msgspec.json.Encoder().encode
_QUOTING = frozenset({400, 413, 422})  # upstream statuses whose text may quote the request


_LOGGED = {"/v1/messages": "messages", "/v1/messages/count_tokens": "count_tokens"}


def _error_response(
    request: Request[Any, Any, Any],
    status: int,
    error_type: str,
    message: str,
    scrub: Scrubber,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    request_id = _id_of(request)
    return Response(
        error_body(error_type, message, request_id, scrub),
        status_code=status,
        media_type="application/json",
        headers={"request-id": request_id, "x-request-id": request_id, **(headers or {})},
    )


def _id_of(request: Request[Any, Any, Any]) -> str:
    """The request's id: the one its handler gave it, else the client's, else a new one."""
    request_id: str | None = request.state.get("request_id")
    if not request_id:
        given = request.headers.get("x-request-id")
        request_id = request.state.request_id = request_id_for(given)
    return request_id


def begin(request: Request[Any, Any, Any], port: str, endpoint: str) -> Record:
    """The request line's record of one request, its id the client's when it gave one."""
    record = request.state.record = Record(port, endpoint, _id_of(request))
    return record


def _failed(request: Request[Any, Any, Any], port: str, status: int, error_type: str) -> None:
    """The request line of a logged endpoint's request answered with an error."""
    record: Record | None = request.state.get("record")
    if record is None:
        endpoint = _LOGGED.get(request.url.path)
        if endpoint is None:
            return  # not a request the log follows
        record = begin(request, port, endpoint)  # refused before its handler ran
    record.finish(status, error_type)


def _http_error_message(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    if exc.status_code == 404:
        return (
            f"no route for {request.method} {request.url.path}; this port serves /v1/messages, "
            "/v1/messages/count_tokens, /v1/models, /health, /info and /metrics"
        )
    if exc.status_code == 405:
        return f"method {request.method} is not allowed on {request.url.path}"
    return str(exc.detail)


class Port(Protocol):
    """What a port's shared routes need: a provider's engine, or a router's."""

    @property
    def name(self) -> str: ...

    def scrubber_for(self, client_headers: Mapping[str, str]) -> Scrubber: ...

    async def messages(
        self,
        body: bytes,
        client_headers: Mapping[str, str],
        request_id: str = "",
        record: Record | None = None,
    ) -> Answer: ...


def exception_handlers(engine: Port) -> ExceptionHandlersMap:
    """Error bodies for every failure of a port; each passes the request's scrubber."""

    def api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"retry-after": retry_after} if retry_after else None
        scrub = engine.scrubber_for(request.headers)
        if exc.status_code >= 500 or isinstance(exc, UpstreamError):
            # The gateway's or the upstream's fault: the operator needs to see it. The text
            # of an upstream's 400, 413 or 422 often quotes the request (prompt): not logged.
            echoed = (
                exc.upstream_status
                if isinstance(exc, UpstreamStatusError) and exc.upstream_status in _QUOTING
                else None
            )
            log.warning(
                "%s %s: %s %s answered %d: %s",
                engine.name,
                _id_of(request),
                request.method,
                request.url.path,
                exc.status_code,
                f"the upstream answered {echoed} ({exc.error_type})"
                if echoed
                else clean(exc.message, scrub),
            )
        _failed(request, engine.name, exc.status_code, exc.error_type)
        return _error_response(
            request, exc.status_code, exc.error_type, exc.message, scrub, headers
        )

    def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        status = exc.status_code
        message = _http_error_message(request, exc)
        _failed(request, engine.name, status, error_type_for_status(status))
        return _error_response(
            request,
            status,
            error_type_for_status(status),
            message,
            engine.scrubber_for(request.headers),
        )

    def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        scrub = engine.scrubber_for(request.headers)
        detail = clean(" ".join(str(exc).split()), scrub)
        log.error(
            "%s %s: unexpected %s on %s %s: %s",
            engine.name,
            _id_of(request),
            type(exc).__name__,
            request.method,
            request.url.path,
            detail,
        )
        message = f"internal error ({type(exc).__name__}); see the gateway log"
        _failed(request, engine.name, 500, "api_error")
        return _error_response(request, 500, "api_error", message, scrub)

    return {ApiError: api_error, HTTPException: http_error, Exception: unexpected}


def shared_routes(port: Port) -> list[Any]:
    """`POST /v1/messages` and the probes, the same on every port."""

    @post("/v1/messages", status_code=200)
    async def messages(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
        record = begin(request, port.name, "messages")
        with record:
            body = await request.body()
            answer = await port.messages(body, request.headers, record.request_id, record)
        headers = {**record.headers, **answer.headers}
        if answer.stream is not None:
            headers["cache-control"] = "no-cache"
            stream = record.watch(answer.stream)
            return Stream(stream, media_type="text/event-stream", headers=headers)
        assert answer.body is not None
        record.answered(answer.body)
        return Response(answer.body, media_type="application/json", headers=headers)

    @get("/metrics")
    async def metrics_text(request: Request[Any, Any, Any]) -> Response[bytes]:
        text, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(text, media_type=content_type)

    @head("/")
    async def probe() -> None:
        return None

    @get("/")
    async def root() -> Response[bytes]:
        return Response(
            _encode({"provider": port.name, "version": __version__}),
            media_type="application/json",
        )

    return [messages, metrics_text, probe, root]


def create_app(provider: Provider, *, transport: Any = None) -> Litestar:
    """One Litestar app serving one provider."""
    upstream = Upstream(provider, transport)
    catalog = Catalog(provider)
    engine = Engine(provider, upstream, catalog)

    @post("/v1/messages/count_tokens", status_code=200)
    async def count_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
        record = begin(request, engine.name, "count_tokens")
        with record:
            body = await request.body()
            counted = await engine.count_tokens(body, request.headers, record.request_id)
        record.finish(200)
        return Response(counted, media_type="application/json", headers=record.headers)

    @get("/v1/models")
    async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(_encode(model_list(engine, request)), media_type="application/json")

    @get("/health")
    async def health() -> Response[bytes]:
        return Response(_encode(health_report(engine)), media_type="application/json")

    @get("/info")
    async def info() -> Response[bytes]:
        return Response(_encode(info_report(engine)), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(catalog.run(upstream), name=f"catalog-{provider.name}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await upstream.aclose()

    app = Litestar(
        route_handlers=[*shared_routes(engine), count_tokens, models, health, info],
        exception_handlers=exception_handlers(engine),
        lifespan=[lifespan],
        openapi_config=None,
        logging_config=None,
        request_max_body_size=provider.spec.limits.request_bytes,
        before_request=key_check(provider.spec.access.keys, provider.file),
    )
    app.state.engine = engine
    return app
