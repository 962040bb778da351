"""Commands that point Claude Code at a port: `env` prints the exports, `code` runs it."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from .compile import load_providers
from .scrub import PLACEHOLDER_KEY

__all__ = ["register"]

_RAW = argparse.RawDescriptionHelpFormatter
_WAIT = 20.0  # seconds for a port started here to answer


def _address(directory: str, name: str) -> str | None:
    """`http://host:port` of the provider or router `name`, or None (said on stderr)."""
    result = load_providers([directory])
    ports = {p.name: (p.spec.host, p.spec.port) for p in result.providers}
    ports.update({r.name: (r.host, r.port) for r in result.routers})
    if name not in ports:
        known = ", ".join(sorted(ports)) or "none"
        print(
            f"multiport: no provider named {name!r} in {directory}; known: {known}", file=sys.stderr
        )
        return None
    host, port = ports[name]
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _environment(url: str) -> dict[str, str]:
    # A key the client already has is kept: an Anthropic passthrough provider forwards it.
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": os.environ.get("ANTHROPIC_API_KEY") or PLACEHOLDER_KEY,
    }


def _cmd_env(args: argparse.Namespace) -> int:
    url = _address(args.dir, args.name)
    if url is None:
        return 1
    # The key is never printed: a shell that has one keeps it.
    print(f"export ANTHROPIC_BASE_URL={url}")
    print(f"export ANTHROPIC_API_KEY=${{ANTHROPIC_API_KEY:-{PLACEHOLDER_KEY}}}")
    return 0


def _cmd_code(args: argparse.Namespace) -> int:
    url = _address(args.dir, args.name)
    if url is None:
        return 1
    claude = os.environ.get("MULTIPORT_CLAUDE") or shutil.which("claude")
    if not claude:
        print(
            "multiport: Claude Code is not installed: npm install -g @anthropic-ai/claude-code",
            file=sys.stderr,
        )
        return 1
    server = None
    if not _answers(url):
        server = subprocess.Popen(
            [sys.executable, "-m", "multiport", "serve", args.dir],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _WAIT
        while not _answers(url) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _answers(url):
            _stop(server)
            print(
                f"multiport: {args.name} did not start at {url}; see the lines above",
                file=sys.stderr,
            )
            return 1
    try:
        claude_args = getattr(args, "passthrough_args", [])
        return subprocess.call([claude, *claude_args], env={**os.environ, **_environment(url)})
    finally:
        if server is not None:
            _stop(server)


def _stop(server: subprocess.Popen[Any]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def register(commands: Any) -> None:
    """Add `env` and `code` to the parser."""
    env = commands.add_parser(
        "env",
        help="print the shell exports that point Claude Code at a port",
        description="Print `export ANTHROPIC_BASE_URL=…` and `ANTHROPIC_API_KEY` for NAME.",
        epilog='example:\n  eval "$(multiport env router)" && claude',
        formatter_class=_RAW,
    )
    env.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        default="router",
        help="provider or router (default: router)",
    )
    env.add_argument("--dir", default="providers.d", help="folder of provider files")
    env.set_defaults(run=_cmd_env)
    code = commands.add_parser(
        "code",
        help="run Claude Code through a port, starting multiport if nothing serves it",
        description="Run Claude Code with ANTHROPIC_BASE_URL set to NAME's port; arguments "
        "after `--` go to claude. If nothing answers there, `multiport serve DIR` is started "
        "first and stopped after.",
        epilog="examples:\n  multiport code\n  multiport code github-models -- -p 'Say hello'",
        formatter_class=_RAW,
    )
    code.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        default="router",
        help="provider or router (default: router)",
    )
    code.add_argument("--dir", default="providers.d", help="folder of provider files")
    code.set_defaults(run=_cmd_code)
