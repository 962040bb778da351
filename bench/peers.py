"""The gateways measured beside multiport: how each is installed, configured and started.

Each peer is installed once into a cache folder (`MULTIPORT_BENCH_CACHE`, else
`~/.cache/multiport-bench`), pinned, and configured to forward every model to the mock
upstream as an OpenAI-compatible chat-completions server. An install that fails (no
network, no node) makes the peer unavailable with the reason; the run goes on without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("MULTIPORT_BENCH_CACHE", Path.home() / ".cache" / "multiport-bench"))
CCR_PACKAGE = "@musistudio/claude-code-router@2.0.0"
LITELLM_PACKAGE = "litellm[proxy]==1.108.7"
# LiteLLM refuses to start without a master key; every load request carries it as x-api-key.
LITELLM_KEY = "sk-multiport-bench-0123456789abcdef"
PROVIDER = """\
port: {port}
base_url: http://127.0.0.1:{upstream}/v1
auth:
  value: Bearer bench-key
mappings:
  - match: .
    target: bench-model
"""


class Unavailable(Exception):
    """A peer that cannot be installed here; the message says why."""


@dataclass(frozen=True)
class Launch:
    """How to start one gateway on a port in front of the mock upstream."""

    command: list[str]
    env: dict[str, str]
    cwd: Path


def multiport(folder: Path, port: int, upstream: int) -> Launch:
    (folder / "bench.yaml").write_text(PROVIDER.format(port=port, upstream=upstream))
    env = {**os.environ, "MULTIPORT_CACHE_DIR": str(folder)}
    command = [sys.executable, "-m", "multiport", "serve", str(folder), "--no-reload"]
    return Launch(command, env, folder)


def _install(target: Path, steps: list[list[str]], timeout: float) -> None:
    """Run the install steps into a temporary folder, then move it to `target` whole."""
    if target.exists():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=CACHE))
    try:
        for step in steps:
            command = [part.replace("{prefix}", str(staging)) for part in step]
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise Unavailable(f"`{' '.join(step[:3])} …` failed: {' '.join(tail)[:300]}")
        staging.rename(target)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"install failed: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def claude_code_router(folder: Path, port: int, upstream: int) -> Launch:
    """claude-code-router 2.0.0: `ccr start` in the foreground, its home in `folder`."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise Unavailable("node and npm are not installed")
    target = CACHE / "claude-code-router-2.0.0"
    npm = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", "{prefix}"]
    _install(target, [[*npm, CCR_PACKAGE]], timeout=600)
    cli = target / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / "cli.js"
    home = folder / "home"
    (home / ".claude-code-router").mkdir(parents=True)
    config = {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "NON_INTERACTIVE_MODE": True,
        "Providers": [
            {
                "name": "mock",
                "api_base_url": f"http://127.0.0.1:{upstream}/v1/chat/completions",
                "api_key": "bench-key",
                "models": ["bench-model"],
            }
        ],
        "Router": {"default": "mock,bench-model"},
    }
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "HOME": str(home)}
    return Launch(["node", str(cli), "start"], env, folder)


def litellm(folder: Path, port: int, upstream: int) -> Launch:
    """LiteLLM's proxy in its own venv, one worker, chat completions upstream."""
    target = CACHE / "litellm-1.108.7"
    pip = ["{prefix}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _install(target, [[sys.executable, "-m", "venv", "{prefix}"], [*pip, LITELLM_PACKAGE]], 1200)
    # A venv's scripts name the folder they were made in; run the module from the final one.
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        '  - model_name: "*"\n'
        "    litellm_params:\n"
        "      model: openai/bench-model\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n"
        "      api_key: bench-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        # /v1/messages to an openai/ model goes to the Responses API unless told otherwise.
        "  use_chat_completions_url_for_anthropic_messages: true\n"
    )
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    python = str(target / "bin" / "python")
    command = [python, "-m", "litellm.proxy.proxy_cli", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return Launch(command, env, folder)


GATEWAYS = {
    "multiport": multiport,
    "claude-code-router": claude_code_router,
    "litellm": litellm,
}
