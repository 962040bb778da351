"""Commands that serve or query providers: serve, models, route."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

from .compile import LoadResult, load_providers
from .errors import Problem
from .loader import LoadedFile
from .logformat import configure as configure_logging
from .provider import Provider
from .routing import Router
from .workers import as_worker, count, supervise, worker_index

__all__ = ["load_reported", "one_provider", "register"]

_RAW = argparse.RawDescriptionHelpFormatter


def _show(problems: list[Problem], files: list[LoadedFile], only: list[str] | None) -> None:
    """Every error; warnings only for the providers that would be served."""
    shown = {str(f.path) for f in files if not only or f.name in only}
    for problem in problems:
        if problem.severity == "error" or problem.file in shown:
            print(problem, file=sys.stderr)


def load_reported(paths: list[str], only: list[str] | None = None) -> LoadResult | None:
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


def one_provider(directory: str, name: str) -> Provider | None:
    result = load_reported([directory])
    if result is None:
        return None
    for provider in result.providers:
        if provider.name == name:
            return provider
    names = ", ".join(p.name for p in result.providers)
    print(f"multiport: no provider named {name!r} in {directory}; known: {names}", file=sys.stderr)
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose, log_format=args.log_format)
    if worker_index() is not None:
        as_worker()
    chosen = _to_serve(args)
    if isinstance(chosen, int):
        return chosen
    from .inbound import refuse_open
    from .reload import Reload
    from .server import PortFailed, PortInUse, serve

    providers, routers = chosen
    if refuse_open(providers, routers, allow=args.allow_open):
        return 1
    if args.workers > 1 and worker_index() is None:
        addresses = [(p.name, p.spec.host, p.spec.port) for p in providers]
        addresses += [(r.name, r.host, r.port) for r in routers]
        return supervise(
            args.words, args.workers, args.shutdown_timeout, addresses, strict=args.strict
        )
    level = "info" if args.verbose else "warning"
    reload = Reload(args.dir, args.only, watch=not args.no_reload, allow_open=args.allow_open)
    main = serve(
        providers,
        routers=routers,
        log_level=level,
        strict=args.strict,
        grace=args.shutdown_timeout,
        reload=reload,
    )
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
        result = load_reported([args.dir], args.only)
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


def register(commands: Any) -> None:
    """Add the serving commands to the parser."""
    serve = commands.add_parser(
        "serve",
        help="serve every provider on its port, in one process (or N: --workers)",
        description="Serve the Anthropic Messages API for every provider file in DIR, each on "
        "the port its file declares, in one process. A file with errors is left out and "
        "named on stderr (FILE:LINE:COL: error: ...); the others are served. The exit "
        "status is 1 when no provider can be served; with --strict, any error in any file "
        "refuses the start. Files are watched: a new, changed or removed file opens, swaps or "
        "closes its port. Ctrl-C or SIGTERM stops all, requests in flight finishing first.",
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
        "-v", "--verbose", action="store_true", help="also log each upstream call (httpx)"
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="every log line as text (default) or as one JSON object (docs/operations.md)",
    )
    serve.add_argument(
        "--allow-open",
        action="store_true",
        help="serve a port on a non-loopback host without access.keys (refused by "
        "default: anyone who reaches it would use your upstream credentials)",
    )
    serve.add_argument(
        "--no-reload",
        action="store_true",
        help="do not watch DIR (SIGHUP still reloads it): by default a new, changed or "
        "removed file opens, swaps or closes its port while the others serve on",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=25.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long requests in flight may take to finish before "
        "they end with an error (default: 25)",
    )
    serve.add_argument(
        "--workers",
        type=count,
        default=1,
        metavar="N",
        help="serve every port from N processes (a number, or `auto`: one per core), the "
        "kernel spreading connections over them; Linux (docs/deployment.md). Default: 1",
    )
    serve.set_defaults(run=_cmd_serve)
