"""The command layer: validate, schema, serve, models, route. Thin: the work is elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from . import __version__
from .compile import LoadResult, load_providers
from .docgen import refresh_docs
from .spec import ProviderSpec

__all__ = ["main", "provider_schema"]

DEFAULT_DIR = "providers.d"


def provider_schema() -> str:
    """The JSON Schema of a provider file, as committed in schemas/."""
    schema = msgspec.json.schema(ProviderSpec)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "multiport provider file"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.docs is not None:
        stale = refresh_docs(Path(args.docs), write=True)
        for table in stale:
            print(f"rewrote {table}")
        return 0
    sys.stdout.write(provider_schema())
    return 0


def _summary(result: LoadResult) -> dict[str, object]:
    return {
        "valid": not result.errors,
        "providers": [
            {
                "name": p.name,
                "file": p.file,
                "port": p.spec.port,
                "host": p.spec.host,
                "dialect": p.wire.dialect,
                "mappings": len(p.rules),
            }
            for p in result.providers
        ],
        "routers": [
            {"name": r.name, "file": r.file, "port": r.port, "host": r.host, "rules": len(r.rules)}
            for r in result.routers
        ],
        "problems": [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": p.path,
                "severity": p.severity,
                "message": p.message,
            }
            for p in result.problems
        ],
    }


def _cmd_validate(args: argparse.Namespace) -> int:
    paths = args.paths or [DEFAULT_DIR]
    missing = [path for path in paths if not Path(path).exists()]
    if missing:  # a usage error, not an invalid file
        print(f"multiport validate: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    result = load_providers(paths, strict_env=args.strict)
    if args.format == "json":
        sys.stdout.write(json.dumps(_summary(result), indent=2) + "\n")
        return 1 if result.errors else 0
    for problem in result.problems:
        print(problem)
    for provider in result.providers:
        print(
            f"ok  {provider.name:<16} port {provider.spec.port:<5}  dialect {provider.wire.dialect:<12} {provider.file}"
        )
    for router in result.routers:
        print(
            f"ok  {router.name:<16} port {router.port:<5}  router  {len(router.rules)} rule(s)  {router.file}"
        )
    errors = len(result.errors)
    warnings = len(result.problems) - errors
    files = len(result.files)
    valid = len(result.providers) + len(result.routers)
    print(f"{files} file(s), {valid} valid provider(s), {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiport",
        description="Serve the Anthropic Messages API on one port per provider, "
        "each declared in one YAML file.",
        epilog="example:\n  multiport validate providers.d/\n  multiport serve providers.d/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"multiport {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check provider files exactly as serve loads them",
        description="Check provider files exactly as `serve` loads them: YAML, schema, "
        "regexes, JSONPaths, templates (rendered on sample requests), names, ports, URLs "
        "and environment variables. Opens no port and makes no network call.",
        epilog="examples:\n  multiport validate\n  multiport validate providers.d/ my-provider.yaml --strict\n"
        "  multiport validate --format json providers.d/\n\n"
        "exit status: 0 valid, 1 invalid, 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "paths", nargs="*", metavar="PATH", help=f"files or folders (default: {DEFAULT_DIR})"
    )
    validate.add_argument(
        "--strict", action="store_true", help="unset environment variables are errors"
    )
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format"
    )
    validate.set_defaults(run=_cmd_validate)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of a provider file",
        description="Print the JSON Schema of a provider file (as in schemas/provider.schema.json).",
        epilog="examples:\n  multiport schema > schemas/provider.schema.json\n"
        "  multiport schema --docs docs   # rewrite the generated field tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.add_argument(
        "--docs",
        metavar="DIR",
        help="rewrite the field tables in DIR/provider-configuration.md and DIR/templates.md",
    )
    schema.set_defaults(run=_cmd_schema)

    from . import cli_serve  # the serving commands live apart: they import the web stack

    cli_serve.register(commands)
    from . import cli_code, cli_query

    cli_query.register(commands)
    cli_code.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` belongs to the program a command runs (`multiport code -- -p hi`).
    cut = words.index("--") if "--" in words else len(words)
    args = parser.parse_args(words[:cut])
    args.passthrough_args = words[cut + 1 :]
    args.words = words[:cut]  # what `serve --workers` runs again in each worker
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        status: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (`multiport validate | head`): nothing left to say.
        sys.stderr.close()
        return 0
    return status
