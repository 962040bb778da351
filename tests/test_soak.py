"""A soak: mixed load at 256 connections with every abuse interleaved, for a bounded time.

Every well-formed request must succeed, every abuse must get its clear refusal (or be cut
off), and the gateway's peak memory must stay under `CEILING_MB`. The counts are printed
(`pytest -s`). `MULTIPORT_SOAK_SECONDS` changes the length (default 20 s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from .gateway import Gateway
from .upstream_server import free_ports

SECONDS = float(os.environ.get("MULTIPORT_SOAK_SECONDS", "20"))
CONNECTIONS = 256
CEILING_MB = 300  # the gateway's peak RSS over the whole soak (docs/limits.md)

PROVIDER = """\
port: {port}
base_url: {upstream}/v1
auth:
  value: Bearer ${{SOAK_KEY}}
mappings:
  - {{match: ^hang$, target: hang}}
  - {{match: ^flood$, target: flood}}
  - {{match: ^bomb$, target: bomb}}
  - {{match: '^(a+)+$', target: gpt-4.1}}
  - {{match: ., target: gpt-4.1}}
limits:
  answer_bytes: 4000000
  stream_line_bytes: 1000000
  header_seconds: 2
  body_seconds: 2
  keep_alive_seconds: 5
  concurrent_requests: 400  # the 256 well-formed connections and every abuser at once
"""

Counts = collections.Counter[str]
_ABUSES = {"abandoned", "redos", "flood", "bomb"}


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.soak_upstream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    url = process.stdout.readline().decode().strip()
    assert url.startswith("http://127.0.0.1:"), url
    yield url
    process.stdin.close()
    process.wait(10)
    process.stdout.close()


def _peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _body(model: str, stream: bool = False) -> dict[str, object]:
    return {
        "model": model,
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }


async def _until(end: float, counts: Counts, work: Callable[[], Awaitable[str]]) -> None:
    """Run `work` again and again until `end`, counting what each run says."""
    while time.monotonic() < end:
        try:
            counts[await work()] += 1
        except httpx.HTTPError as exc:
            # Only well-formed requests must succeed; an abuser's connection may be cut.
            name = getattr(work, "func", work).__name__
            verdict = "cut off" if name in _ABUSES else "FAILED"
            counts[f"{name} {verdict} {type(exc).__name__}"] += 1


class Soak:
    def __init__(self, port: int, end: float) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.end = end
        self.counts: Counts = collections.Counter()

    async def well_formed(self, client: httpx.AsyncClient, n: int) -> str:
        stream = n % 2 == 0
        async with client.stream(
            "POST", self.url + "/v1/messages", json=_body("claude-sonnet-5", stream)
        ) as answer:
            raw = await answer.aread()
        if answer.status_code != 200:
            return f"well-formed FAILED {answer.status_code}: {raw[:200]!r}"
        text = raw.decode()
        if stream:
            ok = "event: message_stop" in text and "event: error" not in text
            ok = ok and '"Hel"' in text
        else:
            ok = json.loads(text)["content"][0]["text"] == "Hello!"
        return "well-formed ok" if ok else f"well-formed FAILED: {text[:200]}"

    async def raw(self, data: bytes, trickle: bool = False) -> bytes:
        """Send `data` on a new connection (byte by byte when `trickle`); what comes back."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            first = b""
            if trickle:
                writer.write(data[:40])
                for byte in data[40:]:
                    writer.write(bytes([byte]))
                    with contextlib.suppress(TimeoutError):
                        first = await asyncio.wait_for(reader.read(1), 0.3)
                        break  # answered, or closed
            else:
                writer.write(data)
            return first + await asyncio.wait_for(reader.read(), 10)
        except (ConnectionError, TimeoutError):
            return b""
        finally:
            writer.close()

    async def idle(self) -> str:
        answer = await self.raw(b"")
        return "idle closed" if answer == b"" else "idle FAILED"

    async def slowloris(self) -> str:
        answer = await self.raw(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n" + b"x" * 200, True)
        return "slowloris 408" if b" 408 " in answer[:20] else f"slowloris FAILED {answer[:40]!r}"

    async def oversized(self) -> str:
        head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 60000000\r\n\r\n{"
        big = await self.raw(head)
        header = await self.raw(b"GET /health HTTP/1.1\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n")
        ok = b" 413 " in big[:20] and b" 431 " in header[:20]
        return "oversized 413+431" if ok else f"oversized FAILED {big[:30]!r} {header[:30]!r}"

    async def abandoned(self, client: httpx.AsyncClient) -> str:
        try:
            await client.post(self.url + "/v1/messages", json=_body("hang"), timeout=0.3)
        except httpx.TimeoutException:
            return "abandoned"
        return "abandoned FAILED: answered"

    async def redos(self, client: httpx.AsyncClient) -> str:
        answer = await client.post(self.url + "/v1/messages", json=_body("a" * 60 + "b"))
        return (
            "redos model 200" if answer.status_code == 200 else f"redos FAILED {answer.status_code}"
        )

    async def flood(self, client: httpx.AsyncClient) -> str:
        async with client.stream(
            "POST", self.url + "/v1/messages", json=_body("flood", True)
        ) as answer:
            text = (await answer.aread()).decode(errors="replace")
        ended = "event: error" in text and "message_stop" not in text
        return "flood error event" if ended else f"flood FAILED {text[-200:]}"

    async def bomb(self, client: httpx.AsyncClient) -> str:
        answer = await client.post(self.url + "/v1/messages", json=_body("bomb"))
        return "gzip bomb 502" if answer.status_code == 502 else f"bomb FAILED {answer.status_code}"

    async def run(self) -> None:
        # A client drops idle connections well before the gateway does (5 s), as it should:
        # a request sent as the gateway closes an idle connection is lost.
        limits = httpx.Limits(
            max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS, keepalive_expiry=1
        )
        async with (
            httpx.AsyncClient(limits=limits, timeout=30) as good,
            httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=1)) as bad,
        ):
            counter = iter(range(10**9))
            tasks = [
                _until(self.end, self.counts, lambda: self.well_formed(good, next(counter)))
                for _ in range(CONNECTIONS)
            ]
            tasks += [_until(self.end, self.counts, self.idle) for _ in range(100)]
            tasks += [_until(self.end, self.counts, self.slowloris) for _ in range(50)]
            tasks += [_until(self.end, self.counts, self.oversized) for _ in range(4)]
            for abuse in (self.abandoned, self.redos, self.flood, self.bomb):
                tasks += [_until(self.end, self.counts, partial(abuse, bad)) for _ in range(4)]
            await asyncio.wait_for(asyncio.gather(*tasks), SECONDS + 60)


def test_soak(upstream_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    port, other = free_ports(2)
    (folder / "soak.yaml").write_text(PROVIDER.format(port=port, upstream=upstream_url))
    (folder / "other.yaml").write_text(PROVIDER.format(port=other, upstream=upstream_url))
    gateway = Gateway([str(folder)], {"SOAK_KEY": "sk-soak-secret"}, [port, other], tmp_path)
    try:
        soak = Soak(port, time.monotonic() + SECONDS)
        started = time.monotonic()
        asyncio.run(soak.run())
        took = time.monotonic() - started
        peak = _peak_mb(gateway.process.pid)
        health = httpx.get(gateway.url(other) + "/health", timeout=2).status_code
    finally:
        log = gateway.stop()
    counts = soak.counts
    print(f"\nsoak of {took:.1f} s at {CONNECTIONS} connections; gateway peak RSS {peak:.0f} MB")
    for what, count in sorted(counts.items()):
        print(f"  {count:8d}  {what}")
    failed = {what: n for what, n in counts.items() if "FAILED" in what}
    assert not failed, failed
    for what in (
        "well-formed ok",
        "idle closed",
        "slowloris 408",
        "oversized 413+431",
        "abandoned",
        "redos model 200",
        "flood error event",
        "gzip bomb 502",
    ):
        assert counts[what] > 0, f"{what} never happened: {counts}"
    assert peak < CEILING_MB
    assert health == 200
    assert "Traceback" not in log
