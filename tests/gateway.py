"""Start `multiport serve` as a subprocess and wait for its ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


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
            self.stop()
            raise RuntimeError(f"ports {sorted(pending)} never answered: {self.log()}")
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
