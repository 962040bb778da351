"""What a provider port reports: `/v1/models` (Anthropic or OpenAI shape), `/health`, `/info`.

Each report passes the provider's scrubber whole: a target or a model id may hold text
that came from a secret (docs/provider-configuration.md, "Where secrets may appear").
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from litestar import Request

from . import __version__
from .engine import Engine
from .errors import ApiError

__all__ = ["CLAUDE_ALIASES", "health_report", "info_report", "model_list"]

# Model names Claude Code offers; /v1/models lists those the mappings resolve.
CLAUDE_ALIASES = (
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-opus-4-8",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)


def health_report(engine: Engine) -> dict[str, Any]:
    provider = engine.provider
    ready = not provider.missing_credentials
    report = {
        "status": "ok",
        "provider": provider.name,
        "ready": ready,
        "credentials": {"ok": ready, "missing": list(provider.missing_credentials)},
        "catalog": engine.catalog.state(),
    }
    scrubbed: dict[str, Any] = engine.scrubber.data(report)
    return scrubbed


def info_report(engine: Engine) -> dict[str, Any]:
    provider = engine.provider
    report = {
        "provider": provider.name,
        "version": __version__,
        "file": provider.file,
        "file_version": provider.version,
        "loaded_at": _iso(int(provider.loaded_at)),
        "pid": os.getpid(),  # which process answered, under `serve --workers`
        "listen": f"http://{provider.spec.host}:{provider.spec.port}",
        "upstream_host": engine.upstream.host,
        "proxy": engine.upstream.proxy.shown if engine.upstream.proxy else None,
        "dialect": provider.wire.dialect,
        "framing": provider.wire.framing,
        "mappings": [
            {"match": r.pattern.pattern, "target": list(r.targets)} for r in provider.rules
        ],
        "catalog": engine.catalog.state(),
        "credentials_missing": list(provider.missing_credentials),
    }
    scrubbed: dict[str, Any] = engine.scrubber.data(report)
    return scrubbed


def model_list(engine: Engine, request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The models a client may name, in the shape it asked for, scrubbed."""
    scrubbed: dict[str, Any] = engine.scrubber.data(_model_list(engine, request))
    return scrubbed


def _model_list(engine: Engine, request: Request[Any, Any, Any]) -> dict[str, Any]:
    catalog = engine.catalog
    entries: list[dict[str, Any]] = []
    for alias in CLAUDE_ALIASES:
        resolution = engine.resolve(alias)
        if resolution.target is not None and alias not in catalog.models:
            entries.append(
                {
                    "id": alias,
                    "display_name": f"{alias} → {resolution.target}",
                    "owned_by": engine.provider.name,
                    "created": 0,
                }
            )
    for model in catalog.models.values():
        entries.append(
            {
                "id": model.id,
                "display_name": model.display_name or model.id,
                "owned_by": model.owned_by or engine.provider.name,
                "created": model.created if isinstance(model.created, int) else 0,
            }
        )
    openai_shape = request.query_params.get("format") == "openai" or request.headers.get(
        "user-agent", ""
    ).startswith("OpenAI/")
    if openai_shape:
        return {
            "object": "list",
            "data": [
                {
                    "id": e["id"],
                    "object": "model",
                    "created": e["created"],
                    "owned_by": e["owned_by"],
                }
                for e in entries
            ],
        }
    ids = [e["id"] for e in entries]
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    try:
        limit = max(1, min(1000, int(request.query_params.get("limit", 20))))
    except ValueError as exc:
        raise ApiError("limit must be an integer from 1 to 1000", status_code=400) from exc
    start, end = 0, len(entries)
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(start, end - limit)
    page = entries[start:end][:limit]
    data = [
        {
            "type": "model",
            "id": e["id"],
            "display_name": e["display_name"],
            "created_at": _iso(e["created"]),
        }
        for e in page
    ]
    has_more = (start + len(page) < end) if before is None else start > 0
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _iso(created: Any) -> str:
    if isinstance(created, int) and created > 0:
        return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "1970-01-01T00:00:00Z"
