"""Commands that query providers without serving them: models, route.

What they print passes the providers' scrubber, as a port's `/v1/models` and `/info` do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
from typing import Any

from .cli_serve import load_reported, one_provider
from .provider import Provider
from .routing import Router
from .scrub import Scrubber, guard_logs

__all__ = ["register"]

_RAW = argparse.RawDescriptionHelpFormatter


def _route_router(args: argparse.Namespace, router: Router, providers: dict[str, Provider]) -> int:
    """Explain a router's choice for a model name, or for a whole request (`--body`), and
    which candidates would be skipped now, and why."""
    from .router_app import explain

    if args.body:
        with open(args.body, "rb") as file:
            body = file.read()
    else:
        message = {"role": "user", "content": "hi"}
        body = json.dumps({"model": args.model, "max_tokens": 1, "messages": [message]}).encode()
    report = explain(router, body)
    circuits = _circuits(router)
    report["candidates"] = [
        {"candidate": c, "skipped": _skipped(c, providers, circuits)} for c in report["candidates"]
    ]
    report = Scrubber(s for p in providers.values() for s in p.secrets).data(report)
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    features = ", ".join(f"{k}={v}" for k, v in report["features"].items())
    print(f"router     {router.name}")
    print(f"request    {features}")
    print(f"rule       {report['rule'] or 'none matches'}")
    for c in report["candidates"]:
        note = f"  (skipped now: {c['skipped']})" if c["skipped"] else ""
        print(f"candidate  {c['candidate']}{note}")
    print("then       each in order until one answers")
    return 0


def _circuits(router: Router) -> dict[str, str]:
    """Circuit states of a running router, if one answers on its port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{router.port}/health", timeout=0.5) as r:
            report = json.load(r).get("candidates", {})
    except (OSError, ValueError):
        return {}
    return {key: str(state.get("state")) for key, state in report.items()}


def _skipped(candidate: str, providers: dict[str, Provider], circuits: dict[str, str]) -> str:
    """Why the router would skip `candidate` now, or ''."""
    name, _, model = candidate.partition("/")
    provider = providers.get(name)
    if provider is None:
        return "provider not served"
    if provider.missing_credentials:
        return f"no credentials: set {', '.join(provider.missing_credentials)}"
    if circuits.get(candidate) == "open":
        return "circuit open"
    from .catalog import Catalog

    catalog = Catalog(provider)
    if catalog.source == "cache" and not catalog.has(model):
        return "not in the provider's catalog"
    return ""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _cmd_models(args: argparse.Namespace) -> int:
    provider = one_provider(args.dir, args.name)
    if provider is None:
        return 1
    from .catalog import Catalog
    from .upstream import Upstream

    catalog = Catalog(provider)
    guard_logs(catalog.scrub)  # the fetch's own log lines name the catalog URL

    async def refresh() -> None:
        upstream = Upstream(provider)
        try:
            await catalog.refresh(upstream)
        finally:
            await upstream.aclose()

    fetch = provider.catalog is not None and (
        args.refresh or catalog.source in ("none", "fallback")
    )
    if fetch:
        asyncio.run(refresh())
    failed = 1 if fetch and catalog.last_error else 0  # what is known is still printed
    models = sorted(catalog.models.values(), key=lambda m: m.id)
    if args.format == "json":
        import msgspec

        report = {
            "provider": provider.name,
            "catalog": catalog.state(),
            "models": msgspec.to_builtins(models),
        }
        print(json.dumps(catalog.scrub.data(report), indent=2))
        return failed
    rows = [["ID", "NAME", "CONTEXT", "OUTPUT", "CAPABILITIES"]]
    for m in models:
        rows.append(
            [
                m.id,
                m.display_name or "",
                str(m.context_window or ""),
                str(m.max_output_tokens or ""),
                ",".join(m.capabilities),
            ]
        )
    print(_table(catalog.scrub.data(rows)))
    state = catalog.state()
    error = f"; last error: {state['last_error']}" if state["last_error"] else ""
    print(f"\n{len(models)} model(s) from {state['source']}{error}")
    return failed


def _cmd_route(args: argparse.Namespace) -> int:
    result = load_reported([args.dir])
    router = next((r for r in result.routers if r.name == args.name), None) if result else None
    if router is not None and result is not None:
        return _route_router(args, router, {p.name: p for p in result.providers})
    provider = one_provider(args.dir, args.name)
    if provider is None:
        return 1
    from .catalog import Catalog
    from .mapping import resolve

    catalog = Catalog(provider)
    available = catalog.has if catalog.models and catalog.source != "fallback" else None
    resolution = resolve(args.model, provider.rules, available)
    report: dict[str, Any] = {
        "provider": provider.name,
        "model": args.model,
        "rule": None
        if resolution.rule is None
        else {"index": resolution.rule.index, "match": resolution.rule.pattern.pattern},
        "candidates": [{"model": c, "available": catalog.has(c)} for c in resolution.candidates],
        "target": resolution.target,
        "reason": resolution.reason,
        "catalog": catalog.state(),
    }
    report = catalog.scrub.data(report)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_route(report, len(catalog.models))
    return 0 if resolution.target else 1


def _print_route(report: dict[str, Any], size: int) -> None:
    """A provider's route report as text."""
    rule = report["rule"]
    print(f"provider   {report['provider']}")
    print(f"model      {report['model']}")
    shown = "none" if rule is None else "#{index} /{match}/".format(**rule)
    print(f"rule       {shown}")
    for c in report["candidates"]:
        print(f"candidate  {c['model']}  ({'in catalog' if c['available'] else 'not in catalog'})")
    print(f"target     {report['target'] or '(none: the request gets 404 not_found_error)'}")
    source = report["catalog"]["source"]
    print(f"why        {report['reason']}; catalog: {source}, {size} model(s)")


def register(commands: Any) -> None:
    """Add `models` and `route` to the parser."""
    models = commands.add_parser(
        "models",
        help="print a provider's model catalog",
        description="Print the models a provider's catalog lists (from the cache, else fetched).",
        epilog="examples:\n  multiport models github-models\n  multiport models openai --refresh --format json"
        "\n\nexit status: 0, or 1 when the provider is unknown or the catalog fetch fails",
        formatter_class=_RAW,
    )
    models.add_argument("name", metavar="NAME", help="provider name")
    models.add_argument("--dir", default="providers.d", help="folder of provider files")
    models.add_argument("--refresh", action="store_true", help="fetch the catalog now")
    models.add_argument("--format", choices=("table", "json"), default="table")
    models.set_defaults(run=_cmd_models)

    route = commands.add_parser(
        "route",
        help="explain how a model name is routed",
        description="Explain which mapping rule a model name matches, its candidates in "
        "order, which the catalog has, and the final target.",
        epilog="examples:\n  multiport route github-models claude-haiku-5-5\n"
        "  multiport route router claude-haiku-5-5\n"
        "  multiport route router --body request.json",
        formatter_class=_RAW,
    )
    route.add_argument("name", metavar="NAME", help="provider or router name")
    route.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default="claude-sonnet-5-5",
        help="model name as a client sends it",
    )
    route.add_argument(
        "--body", metavar="FILE", help="a router only: a whole JSON request to explain"
    )
    route.add_argument("--dir", default="providers.d", help="folder of provider files")
    route.add_argument("--format", choices=("text", "json"), default="text")
    route.set_defaults(run=_cmd_route)
