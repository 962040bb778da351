"""Commands that serve or query providers: serve, models, route."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Any

from .compile import LoadResult, load_providers
from .errors import Problem
from .loader import LoadedFile
from .provider import Provider
from .routing import Router

__all__ = ["register"]

_RAW = argparse.RawDescriptionHelpFormatter


def _show(problems: list[Problem], files: list[LoadedFile], only: list[str] | None) -> None:
    """Every error; warnings only for the providers that would be served."""
    shown = {str(f.path) for f in files if not only or f.name in only}
    for problem in problems:
        if problem.severity == "error" or problem.file in shown:
            print(problem, file=sys.stderr)


def _load(paths: list[str], only: list[str] | None = None) -> LoadResult | None:
    """All or nothing: None, after printing them, when there is any error anywhere."""
    result = load_providers(paths)
    _show(result.problems, result.files, only)
    if result.errors:
        print(
            f"multiport: {len(result.errors)} error(s); run `multiport validate` for details",
            file=sys.stderr,
        )
        return None
    return result


def _load_servable(paths: list[str], only: list[str] | None) -> tuple[LoadResult, list[LoadedFile]]:
    """The providers of the files without errors, and the files left out (named on stderr).

    A file may fail only for clashing with a broken one (the same port or name): the files
    broken on their own are taken out, and the others loaded again without them.
    """
    result = load_providers(paths)
    if not result.errors:
        _show(result.problems, result.files, only)
        return result, []
    alone = [load_providers([str(f.path)]) for f in result.files if _has_errors(f)]
    broken = [a.files[0] for a in alone if a.errors]
    out = {b.path for b in broken}
    rest = load_providers([str(f.path) for f in result.files if f.path not in out])
    files = {str(f.path) for f in result.files}
    loose = [p for p in result.problems if p.file not in files]  # e.g. a folder without files
    problems = [*loose, *(p for b in broken for p in b.problems), *rest.problems]
    _show(problems, [*broken, *rest.files], only)
    served = {p.file for p in rest.providers}
    left_out = [*broken, *(f for f in rest.files if str(f.path) not in served)]
    for loaded in left_out:
        count = sum(p.severity == "error" for p in loaded.problems)
        print(f"multiport: not serving {loaded.path}: {count} error(s), above", file=sys.stderr)
    return rest, left_out


def _has_errors(loaded: LoadedFile) -> bool:
    return any(p.severity == "error" for p in loaded.problems)


def _one(directory: str, name: str) -> Provider | None:
    result = _load([directory])
    if result is None:
        return None
    for provider in result.providers:
        if provider.name == name:
            return provider
    names = ", ".join(p.name for p in result.providers)
    print(f"multiport: no provider named {name!r} in {directory}; known: {names}", file=sys.stderr)
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("multiport").setLevel(logging.INFO)
    chosen = _to_serve(args)
    if isinstance(chosen, int):
        return chosen
    from .server import PortFailed, PortInUse, serve

    providers, routers = chosen
    level = "info" if args.verbose else "warning"
    main = serve(providers, routers=routers, log_level=level, strict=args.strict)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if os.environ.get("MULTIPORT_LOOP", "uvloop") == "uvloop":
                import uvloop  # measured faster than asyncio's own loop (bench/run.py)

                uvloop.run(main)
            else:
                asyncio.run(main)
    except PortInUse as exc:
        print(f"multiport: {exc}", file=sys.stderr)
        return 1
    except PortFailed:
        return 1  # serve logged which port died and why
    return 0


def _to_serve(args: argparse.Namespace) -> tuple[list[Provider], list[Router]] | int:
    """The providers and routers to serve, or the exit status when there is none."""
    left_out: list[LoadedFile] = []
    if args.strict:
        result = _load([args.dir], args.only)
        if result is None:
            return 1
    else:
        result, left_out = _load_servable([args.dir], args.only)
    providers, routers = result.providers, result.routers
    if args.only:
        known = {p.name for p in providers} | {r.name for r in routers} | {f.name for f in left_out}
        unknown = sorted(set(args.only) - known)
        if unknown:
            print(
                f"multiport: --only names unknown provider(s): {', '.join(unknown)}",
                file=sys.stderr,
            )
            return 2
        providers = [p for p in providers if p.name in args.only]
        routers = [r for r in routers if r.name in args.only]
    if not providers and not routers:
        print("multiport: no provider to serve", file=sys.stderr)
        return 1
    return providers, routers


def _route_router(args: argparse.Namespace, router: Router, served: set[str]) -> int:
    """Explain a router's choice for a model name, or for a whole request (`--body`)."""
    from .router_app import explain

    if args.body:
        with open(args.body, "rb") as file:
            body = file.read()
    else:
        message = {"role": "user", "content": "hi"}
        body = json.dumps({"model": args.model, "max_tokens": 1, "messages": [message]}).encode()
    report = explain(router, body)
    report["candidates"] = [
        {"candidate": c, "served": c.partition("/")[0] in served} for c in report["candidates"]
    ]
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    features = ", ".join(f"{k}={v}" for k, v in report["features"].items())
    print(f"router     {router.name}")
    print(f"request    {features}")
    print(f"rule       {report['rule'] or 'none matches'}")
    for c in report["candidates"]:
        note = "" if c["served"] else "  (provider not served: skipped)"
        print(f"candidate  {c['candidate']}{note}")
    print("then       each in order until one answers; open circuits are skipped (see /health)")
    return 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _cmd_models(args: argparse.Namespace) -> int:
    provider = _one(args.dir, args.name)
    if provider is None:
        return 1
    from .catalog import Catalog
    from .upstream import Upstream

    catalog = Catalog(provider)

    async def refresh() -> None:
        upstream = Upstream(provider)
        try:
            await catalog.refresh(upstream)
        finally:
            await upstream.aclose()

    if provider.catalog is not None and (args.refresh or catalog.source in ("none", "fallback")):
        asyncio.run(refresh())
    models = sorted(catalog.models.values(), key=lambda m: m.id)
    if args.format == "json":
        import msgspec

        print(
            json.dumps(
                {
                    "provider": provider.name,
                    "catalog": catalog.state(),
                    "models": msgspec.to_builtins(models),
                },
                indent=2,
            )
        )
        return 0
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
    print(_table(rows))
    state = catalog.state()
    error = f"; last error: {state['last_error']}" if state["last_error"] else ""
    print(f"\n{len(models)} model(s) from {state['source']}{error}")
    return 0


def _cmd_route(args: argparse.Namespace) -> int:
    result = _load([args.dir])
    router = next((r for r in result.routers if r.name == args.name), None) if result else None
    if router is not None and result is not None:
        return _route_router(args, router, {p.name for p in result.providers})
    provider = _one(args.dir, args.name)
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
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        rule = report["rule"]
        print(f"provider   {provider.name}")
        print(f"model      {args.model}")
        shown = "none" if rule is None else "#{index} /{match}/".format(**rule)
        print(f"rule       {shown}")
        for c in report["candidates"]:
            print(
                f"candidate  {c['model']}  ({'in catalog' if c['available'] else 'not in catalog'})"
            )
        print(f"target     {resolution.target or '(none: the request gets 404 not_found_error)'}")
        print(
            f"why        {resolution.reason}; catalog: {catalog.source}, {len(catalog.models)} model(s)"
        )
    return 0 if resolution.target else 1


def register(commands: Any) -> None:
    """Add the serving commands to the parser."""
    serve = commands.add_parser(
        "serve",
        help="serve every provider on its port, in one process",
        description="Serve the Anthropic Messages API for every provider file in DIR, each on "
        "the port its file declares, in one process. A file with errors is left out and "
        "named on stderr (FILE:LINE:COL: error: ...); the others are served. The exit "
        "status is 1 when no provider can be served; with --strict, any error in any file "
        "refuses the start. Ctrl-C stops all.",
        epilog="examples:\n  multiport serve\n  multiport serve providers.d --only openai github-models\n"
        "  multiport serve --strict   # all or nothing\n"
        "  OPENAI_BASE_URL=http://127.0.0.1:9000/v1 OPENAI_API_KEY=x multiport serve --only openai",
        formatter_class=_RAW,
    )
    serve.add_argument(
        "dir",
        nargs="?",
        default="providers.d",
        metavar="DIR",
        help="folder of provider files (default: providers.d)",
    )
    serve.add_argument("--only", nargs="+", metavar="NAME", help="serve only these providers")
    serve.add_argument(
        "--strict",
        action="store_true",
        help="start nothing when any provider file has an error (by default the files "
        "with errors are left out and the others served)",
    )
    serve.add_argument(
        "-v", "--verbose", action="store_true", help="log every request and catalog refresh"
    )
    serve.set_defaults(run=_cmd_serve)

    models = commands.add_parser(
        "models",
        help="print a provider's model catalog",
        description="Print the models a provider's catalog lists (from the cache, else fetched).",
        epilog="examples:\n  multiport models github-models\n  multiport models openai --refresh --format json",
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
