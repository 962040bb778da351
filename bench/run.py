"""Benchmark multiport against a baseline measured in the same run.

The baseline is the mock upstream itself, loaded directly; multiport is measured in front
of it, for small and Claude-Code-sized requests, streaming and not, with each upstream
transport. Results are ratios to the baseline, so they compare across machines.

    python bench/run.py [--seconds 5] [--connections 32]

Loopback only; every load is bounded in time and request count.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROVIDER = """\
port: {port}
base_url: http://127.0.0.1:{upstream}/v1
auth:
  value: Bearer bench-key
mappings:
  - match: .
    target: bench-model
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, method: str = "GET") -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.request(method, url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


def load(url: str, body: bytes, connections: int, seconds: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        out = subprocess.run(
            [
                sys.executable,
                str(HERE / "load.py"),
                url,
                f.name,
                str(connections),
                str(seconds),
                "200000",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--variants",
        default="uvloop+aiohttp,asyncio+aiohttp,uvloop+httpx",
        help="event loop + upstream transport pairs to measure",
    )
    parser.add_argument("--workers", default="1", help="passed to `multiport serve --workers`")
    args = parser.parse_args()

    small = json.dumps(
        {
            "model": "claude-haiku-5-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}],
        }
    ).encode()
    fixture = json.loads(
        (ROOT / "tests" / "data" / "claude-code" / "03-tool-roundtrip-turn2.json").read_text()
    )["body"]
    big_stream = json.dumps(fixture).encode()
    small_stream = json.dumps({**json.loads(small), "stream": True}).encode()
    upstream_body = json.dumps(
        {
            "model": "bench-model",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 64,
        }
    ).encode()

    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "mock_upstream.py"), str(upstream_port)]
    )
    results: dict[str, dict[str, float]] = {}
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        wait_ready(upstream_url, "POST")
        results["baseline: mock upstream direct"] = load(
            upstream_url, upstream_body, args.connections, args.seconds
        )
        for variant in args.variants.split(","):
            loop, transport = variant.split("+")
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                (Path(tmp) / "bench.yaml").write_text(
                    PROVIDER.format(port=port, upstream=upstream_port)
                )
                env = {
                    **os.environ,
                    "MULTIPORT_TRANSPORT": transport,
                    "MULTIPORT_LOOP": loop,
                    "MULTIPORT_CACHE_DIR": tmp,
                }
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "multiport", "serve", tmp, "--workers", args.workers],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    url = f"http://127.0.0.1:{port}/v1/messages"
                    wait_ready(f"http://127.0.0.1:{port}/health")
                    load(url, small, 4, 1.0)  # warm-up
                    for name, body in (
                        ("small", small),
                        ("small stream", small_stream),
                        ("Claude Code 50 KB stream", big_stream),
                    ):
                        shown = (
                            variant if args.workers == "1" else f"{variant}, {args.workers} workers"
                        )
                        results[f"multiport ({shown}): {name}"] = load(
                            url, body, args.connections, args.seconds
                        )
                finally:
                    gateway.terminate()
                    gateway.wait(10)
    finally:
        upstream.terminate()
        upstream.wait(10)
    base = results["baseline: mock upstream direct"]["rps"]
    print(f"{'scenario':<48} {'req/s':>8} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        print(
            f"{name:<48} {r['rps']:>8.0f} {r['rps'] / base:>7.2f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {int(r['errors']):>7}"
        )
    print(
        f"\n{args.connections} connections, {args.seconds:g} s per scenario, {os.cpu_count()} cores, loopback"
    )


if __name__ == "__main__":
    main()
