"""The measurements: load at C connections, latency at concurrency 1, peak memory.

Load is driven by wrk when it is installed (one thread, a Lua script that posts the body),
else by load.py (aiohttp); the run records which. Latency at concurrency 1 is timed here,
on one kept-alive connection, so a gateway's figure and the mock's direct one come from
the same client and their difference is what the gateway adds.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    # LiteLLM's master key (peers.LITELLM_KEY); the others ignore it.
    "x-api-key": "sk-multiport-bench-0123456789abcdef",
}
WRK_SCRIPT = """\
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
HEADERS
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "us": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""".replace("HEADERS", "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items()))


def load_generator(choice: str) -> str:
    """`wrk` when asked for or found, else `load.py`."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "load.py"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--load wrk: wrk is not installed (apt-get install wrk)")
    return choice


def load(
    generator: str, url: str, body: bytes, connections: int, seconds: float
) -> dict[str, float]:
    """Requests per second and latency percentiles of one bounded load."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        if generator == "wrk":
            return _wrk(Path(tmp), body_file, url, connections, seconds)
        command = [sys.executable, str(HERE / "load.py"), url, str(body_file)]
        command += [str(connections), str(seconds), "1000000"]
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=seconds + 60
        )
    return dict(json.loads(out.stdout))


def _wrk(
    tmp: Path, body_file: Path, url: str, connections: int, seconds: float
) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT)
    duration = f"{max(1, round(seconds))}s"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--timeout", "10s"]
    command += ["-s", str(script), url]
    env = {**os.environ, "BENCH_BODY": str(body_file)}
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env=env, timeout=seconds + 60
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    r = json.loads(line[len("BENCH ") :])
    ok = r["requests"] - r["status_errors"]
    return {
        "rps": ok / (r["us"] / 1e6),
        "ok": ok,
        "errors": r["status_errors"] + r["socket_errors"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def sequential(url: str, body: bytes, requests: int, *, first_byte: bool) -> dict[str, float]:
    """p50 and p99 in ms of `requests` calls one after another on one connection.

    With `first_byte`, the time to the first byte of the body (a stream's first event),
    else to the last.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    times: list[float] = []
    errors = 0
    try:
        for i in range(requests + requests // 10 + 5):  # the first tenth warms up
            start = time.perf_counter()
            connection.request("POST", parts.path, body, HEADERS)
            response = connection.getresponse()
            response.read(1)
            at_first_byte = time.perf_counter()
            response.read()
            end = time.perf_counter()
            if response.status != 200:
                errors += 1
            elif i >= requests // 10 + 5:
                times.append((at_first_byte if first_byte else end) - start)
    finally:
        connection.close()
    if not times:
        raise RuntimeError(f"{url}: every request at concurrency 1 failed")
    return {
        "p50_ms": percentile(times, 0.50) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "errors": errors,
    }


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of a process and its descendants, in MB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
        pending += [int(c) for c in children]
    return total / 1024
