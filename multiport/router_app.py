"""The Litestar app of a router port: the shared routes, and what a router reports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post

from .admission import offload
from .app import CLAUDE_ALIASES, begin, exception_handlers, shared_routes
from .engine import Engine
from .fallback import RouterEngine
from .inbound import key_check
from .routing import Router
from .tokens import count_body

__all__ = ["create_router_app"]

_encode = msgspec.json.Encoder().encode


def create_router_app(router: Router, engines: Mapping[str, Engine]) -> Litestar:
    """One Litestar app routing over the other providers' engines (same process)."""
    port = RouterEngine(router, engines)
    for key in router.keys:  # scrubbed like a provider's secrets
        port.scrubber = port.scrubber.with_secret(key)
    listed = {shape: _encode(_models(router, openai=shape)) for shape in (False, True)}

    @post("/v1/messages/count_tokens", status_code=200)
    async def count_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
        record = begin(request, router.name, "count_tokens")
        with record:
            body = await request.body()
            tokens = await offload(len(body), count_body, body)
        record.finish(200)
        body = _encode({"input_tokens": tokens})
        return Response(body, media_type="application/json", headers=record.headers)

    @get("/v1/models")
    async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
        openai = request.query_params.get("format") == "openai" or request.headers.get(
            "user-agent", ""
        ).startswith("OpenAI/")
        return Response(listed[openai], media_type="application/json")

    @get("/health")
    async def health() -> Response[bytes]:
        body = {
            "status": "ok",
            "provider": router.name,
            "router": True,
            "candidates": port.breaker.report(),
        }
        return Response(_encode(body), media_type="application/json")

    @get("/info")
    async def info() -> Response[bytes]:
        return Response(_encode(_info(port)), media_type="application/json")

    app = Litestar(
        route_handlers=[*shared_routes(port), count_tokens, models, health, info],
        exception_handlers=exception_handlers(port),
        openapi_config=None,
        logging_config=None,
        request_max_body_size=router.limits.request_bytes,
        before_request=key_check(router.keys, router.file),
    )
    app.state.router = port
    return app


def _models(router: Router, *, openai: bool) -> dict[str, Any]:
    """The claude aliases, then every candidate the rules reach, once each."""
    ids = list(CLAUDE_ALIASES)
    for rule in router.rules:
        ids += [str(c) for c in rule.candidates if str(c) not in ids]
    if openai:
        data = [{"id": i, "object": "model", "created": 0, "owned_by": router.name} for i in ids]
        return {"object": "list", "data": data}
    data = [
        {"type": "model", "id": i, "display_name": i, "created_at": "1970-01-01T00:00:00Z"}
        for i in ids
    ]
    return {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}


def _info(port: RouterEngine) -> dict[str, Any]:
    router = port.router
    return {
        "provider": router.name,
        "router": True,
        "file": router.file,
        "pid": os.getpid(),  # which process answered, under `serve --workers`
        "listen": f"http://{router.host}:{router.port}",
        "rules": [
            {
                "name": r.name,
                "when": msgspec.to_builtins(r.when),
                "to": [str(c) for c in r.candidates],
            }
            for r in router.rules
        ],
        "candidates": port.breaker.report(),
    }


def explain(router: Router, request_body: bytes) -> dict[str, Any]:
    """Which rule a request meets and its candidates (for `multiport route`)."""
    from .anthropic_wire import decode_messages

    features = router.features(decode_messages(request_body))
    rule = router.pick(features)
    return {
        "features": {
            "model": features.model,
            "background": features.background,
            "thinking": features.thinking,
            "input_tokens": features.input_tokens,
            "images": features.images,
            "web_search": features.web_search,
        },
        "rule": rule.name if rule else None,
        "candidates": [str(c) for c in rule.candidates] if rule else [],
    }
