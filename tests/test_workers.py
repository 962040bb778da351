"""`serve --workers 2` against a loopback upstream: every port shared by two processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from multiport import workers

from .gateway import Gateway
from .upstream_server import Reply, ScriptedUpstream, Seen, chat_completion, free_ports, text_chunks

BODY = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
STARTED = re.compile(r"worker (\d) started \(pid (\d+)\)")

pytestmark = pytest.mark.skipif(workers.unsupported() is not None, reason="no SO_REUSEPORT")


def _answer(seen: Seen) -> Reply:
    body = seen.body if isinstance(seen.body, dict) else {}
    if body.get("stream"):
        return Reply(sse=text_chunks("Hel", "lo"))
    return Reply(json=chat_completion("hello"))


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.strict = False
    server.responder = _answer
    yield server
    server.stop()


def _folder(tmp_path: Path, upstream: ScriptedUpstream) -> tuple[Path, list[int]]:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    ports = free_ports(3)
    for name, port in zip(("alpha", "beta"), ports, strict=False):
        (folder / f"{name}.yaml").write_text(
            f"port: {port}\nbase_url: {upstream.url}/v1\n"
            "auth:\n  value: Bearer sk-workers-0123456789\n"
            "catalog:\n  url: /models\n"
            "mappings:\n  - match: .\n    target: gpt-4.1\n"
        )
    (folder / "router.yaml").write_text(
        f"port: {ports[2]}\nrouter:\n  rules:\n    - to: [alpha/gpt-4.1, beta/gpt-4.1]\n"
    )
    return folder, ports


def _until(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def _pids(gateway: Gateway) -> dict[int, int]:
    """The last pid of each worker, from the parent's log."""
    return {int(i): int(pid) for i, pid in STARTED.findall(gateway.log())}


def _info(port: int) -> dict[str, Any]:
    """`/info` of the worker that answers a new connection to `port`."""
    with httpx.Client(timeout=5) as client:  # a new connection each time
        info: dict[str, Any] = client.get(f"http://127.0.0.1:{port}/info").json()
        return info


def _answered_by(port: int) -> int:
    return int(_info(port)["pid"])


def _every_worker(port: int, count: int, ok: Callable[[dict[str, Any]], bool]) -> set[int]:
    """The pids that answer `port` with an /info `ok` accepts, once `count` did (or 10 s)."""
    passed: set[int] = set()
    deadline = time.monotonic() + 10
    while len(passed) < count and time.monotonic() < deadline:
        info = _info(port)
        if ok(info):
            passed.add(int(info["pid"]))
        time.sleep(0.02)
    return passed


def _ask(port: int, stream: bool = False) -> None:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/messages", json={**BODY, "stream": stream}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert "hello" in answer.text.lower() or "Hel" in answer.text


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_two_workers_share_every_port_restart_and_stop_together(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    folder, ports = _folder(tmp_path, upstream)
    env = {"MULTIPORT_CACHE_DIR": str(tmp_path)}
    args = [str(folder), "--workers", "2", "--shutdown-timeout", "2"]
    gateway = Gateway(args, env, ports, tmp_path)
    try:
        assert _until(lambda: len(_pids(gateway)) == 2), gateway.log()
        first = _pids(gateway)
        assert len(set(first.values())) == 2
        # Every port answers, streamed or not, and both workers serve each port.
        for port in ports:
            _ask(port)
            _ask(port, stream=True)
            assert _every_worker(port, 2, lambda info: True) == set(first.values())
        # The catalog was fetched once, by worker 0; worker 1 reads it from the disk cache.
        with_models = _every_worker(ports[0], 2, lambda info: info["catalog"]["size"] == 2)
        assert with_models == set(first.values())
        catalogs = [s for s in upstream.seen if s.method == "GET" and s.path.endswith("/models")]
        assert len(catalogs) == 2, [s.path for s in catalogs]  # one per provider
        # A worker killed: the ports keep answering, and it is started again.
        os.kill(first[0], signal.SIGKILL)
        time.sleep(0.3)
        for port in ports:
            for _ in range(5):
                _ask(port)
        assert _until(lambda: _pids(gateway)[0] != first[0]), gateway.log()
        second = _pids(gateway)
        assert _until(lambda: _answered_by(ports[0]) == second[0]), gateway.log()
        assert "worker 0 (pid" in gateway.log()
        assert "starting it again" in gateway.log()
        # SIGTERM to the parent stops every worker; exit 0; no process left behind.
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(15) == 0, gateway.log()
        assert time.monotonic() - started < 12
        workers_ever = {*first.values(), *second.values()}
        assert _until(lambda: all(_gone(pid) for pid in workers_ever), 5), workers_ever
    finally:
        log = gateway.stop()
    assert "Traceback" not in log, log


def test_workers_are_checked_before_anything_starts(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "multiport", "serve", str(tmp_path), "--workers"]
    for wrong in ("0", "many"):
        done = subprocess.run([*command, wrong], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2
        assert "expected a number from 1 or `auto`" in done.stderr
    assert workers.count("auto") >= 1
    assert workers.count("3") == 3


def test_windows_refuses_more_than_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    why = workers.unsupported()
    assert why is not None
    assert "SO_REUSEPORT" in why
    assert workers.supervise(["serve"], 2, 1.0, [], strict=False) == 2


def test_sighup_to_the_parent_reloads_every_worker(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    folder, ports = _folder(tmp_path, upstream)
    beta = (folder / "beta.yaml").read_text()
    (folder / "beta.yaml").unlink()
    (folder / "router.yaml").unlink()
    env = {"MULTIPORT_CACHE_DIR": str(tmp_path)}
    args = [str(folder), "--workers", "2", "--no-reload"]
    gateway = Gateway(args, env, ports[:1], tmp_path)
    try:
        assert _until(lambda: len(_pids(gateway)) == 2), gateway.log()
        pids = set(_pids(gateway).values())
        # Both workers serving, so both take SIGHUP (a worker ignores it while starting).
        assert _every_worker(ports[0], 2, lambda info: True) == pids
        time.sleep(0.2)
        (folder / "beta.yaml").write_text(beta)
        gateway.process.send_signal(signal.SIGHUP)
        # The port a reload opens is shared too: both workers answer on it.
        assert _until(lambda: _answered_by(ports[1]) > 0), gateway.log()
        assert _every_worker(ports[1], 2, lambda info: True) == pids
        _ask(ports[1])
    finally:
        log = gateway.stop()
    assert "Traceback" not in log, log
