"""Start `multiport serve` as a subprocess and wait for its ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import yaml

from .conftest import PROVIDERS_DIR
from .upstream_server import free_ports

_PORT_LINE = re.compile(r"^port:[ \t]*\d+[ \t]*$", re.MULTILINE)


def provider_copy(name: str, directory: Path, port: int | None = None) -> tuple[Path, int]:
    """Copy the shipped providers.d/<name>.yaml into `directory`/providers.d, changing only
    its `port:` line (to `port`, or to a free ephemeral port); returns (copied file, port).

    Tests serve the copy, so they exercise the file users run without needing its shipped
    port to be free (a running `multiport serve providers.d` holds the shipped ports).
    A folder of templates next to the file (providers.d/<name>/) is copied with it.
    """
    if port is None:
        port = free_ports(1)[0]
    source = PROVIDERS_DIR / f"{name}.yaml"
    text = source.read_text(encoding="utf-8")
    copied, count = _PORT_LINE.subn(f"port: {port}", text)
    assert count == 1, f"{source} must have exactly one top-level `port:` line, found {count}"
    shipped, renamed = yaml.safe_load(text), yaml.safe_load(copied)
    assert renamed == {**shipped, "port": port}, f"{source}: more than the port changed"
    target = directory / "providers.d" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(copied, encoding="utf-8")
    templates = PROVIDERS_DIR / name  # template files the YAML names, if it has any
    if templates.is_dir():
        shutil.copytree(templates, target.parent / name, dirs_exist_ok=True)
    return target, port


def providers_copy(directory: Path) -> tuple[Path, dict[str, int]]:
    """Every shipped provider file copied into `directory`/providers.d, each on its own free
    ephemeral port; returns (the folder, {provider name: port})."""
    names = [p.stem for p in sorted(PROVIDERS_DIR.glob("*.yaml"))]
    ports: dict[str, int] = {}
    for name, port in zip(names, free_ports(len(names)), strict=True):
        _, ports[name] = provider_copy(name, directory, port)
    return directory / "providers.d", ports


class Gateway:
    """A running `multiport serve`; `stop()` returns its log."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], ports: Sequence[int], cwd: Path
    ) -> None:
        self.ports = list(ports)
        _assert_free(self.ports)
        self.log_path = cwd / f"gateway-{ports[0]}.log"
        self._log = self.log_path.open("wb")
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))
            # A proxy of the machine's own would carry the tests' loopback traffic away;
            # the proxy tests set these themselves.
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        full_env.update(env)
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "multiport", "serve", *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.ready_after = self._wait()

    def url(self, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.ports[0]}"

    def _wait(self, deadline: float = 15.0) -> float:
        pending = set(self.ports)
        while pending and time.monotonic() - self.started_at < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log()}")
            for port in list(pending):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                        pending.discard(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        if pending:
            log = self.stop()
            raise RuntimeError(f"ports {sorted(pending)} never answered: {log}")
        return time.monotonic() - self.started_at

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.log_path.read_text(errors="replace")


def _assert_free(ports: Sequence[int]) -> None:
    """Fail clearly when another process holds a port: its /health would fool the wait."""
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise RuntimeError(
                    f"port {port} is in use by another process (a running `multiport serve`?): "
                    "stop it and run the tests again"
                ) from exc
