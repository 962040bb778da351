"""A bounded load generator: C connections for at most T seconds and N requests."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def run(
    url: str, body: bytes, connections: int, seconds: float, max_requests: int
) -> dict[str, float]:
    done = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(
        connector=connector,
        headers={
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            # LiteLLM's master key (peers.LITELLM_KEY); the others ignore it.
            "x-api-key": "sk-multiport-bench-0123456789abcdef",
        },
    ) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline and done + errors < max_requests:
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                if ok:
                    done += 1
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    return {
        "rps": done / elapsed,
        "ok": done,
        "errors": errors,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
    }


if __name__ == "__main__":
    url, body_file, connections, seconds, max_requests = sys.argv[1:6]
    with open(body_file, "rb") as f:
        body = f.read()
    result = asyncio.run(run(url, body, int(connections), float(seconds), int(max_requests)))
    print(json.dumps(result))
