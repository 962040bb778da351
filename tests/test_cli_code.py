"""`multiport env` and `multiport code`: Claude Code pointed at a port, started if need be."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from .upstream_server import free_port

FAKE_CLAUDE = """\
import json, os, sys, urllib.request
url = os.environ["ANTHROPIC_BASE_URL"]
with urllib.request.urlopen(url + "/health", timeout=5) as response:
    health = json.load(response)
print(json.dumps({"url": url, "key": os.environ["ANTHROPIC_API_KEY"], "provider": health["provider"], "args": sys.argv[1:]}))
"""


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiport", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_env_prints_the_exports(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "p.yaml").write_text(f"port: {port}\nbase_url: http://127.0.0.1:9/v1\n")
    result = _run("env", "p", "--dir", str(tmp_path), env={"ANTHROPIC_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}",
        "export ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY:-multiport}",
    ]


def test_code_starts_the_port_runs_claude_and_stops_it(tmp_path: Path) -> None:
    import json

    port = free_port()
    (tmp_path / "p.yaml").write_text(f"port: {port}\nbase_url: http://127.0.0.1:9/v1\n")
    fake = tmp_path / "claude"
    fake.write_text(f"#!{sys.executable}\n{FAKE_CLAUDE}")
    fake.chmod(0o755)
    env = {"MULTIPORT_CLAUDE": str(fake), "ANTHROPIC_API_KEY": ""}
    result = _run("code", "p", "--dir", str(tmp_path), "--", "-p", "hello", env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {
        "url": f"http://127.0.0.1:{port}",
        "key": "multiport",
        "provider": "p",
        "args": ["-p", "hello"],
    }
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the port it started is stopped again


def test_code_names_a_missing_provider(tmp_path: Path) -> None:
    result = _run("code", "nope", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "no provider named 'nope'" in result.stderr
