"""Benchmark multiport beside its peers, against one mock upstream, in one run.

    python bench/run.py [--peers all] [--seconds 10] [--json FILE] [--png FILE]

Measures, for multiport and each peer asked for (claude-code-router, LiteLLM: installed
on first use, skipped with the reason when that fails), each alone in front of the same
mock OpenAI-compatible upstream (bench/mock_upstream.py):

- requests per second at 32 connections: a small request, a 49 KB Claude Code request
  (both answered whole) and a small streamed request; the mock loaded directly with the
  same bytes is the ceiling;
- latency at concurrency 1 that each gateway adds over calling the mock directly (p50,
  p99), for the small and the 49 KB request and a stream's time to first byte;
- peak RSS of each gateway, and of `multiport serve` over every shipped provider file with
  every catalog of 5,000 models.

Prints tables, writes JSON (--json) and draws a PNG (--png, needs matplotlib: the
`bench` extra). Loopback only; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import measure
import peers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURE = ROOT / "tests" / "data" / "claude-code" / "01-plain-prompt.json"
# Throughput cases; at concurrency 1 the stream is timed to its first byte.
CASES = ("small", "claude-code-49kb", "small-stream")


def bodies() -> dict[str, bytes]:
    small = {
        "model": "claude-haiku-5-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    claude_code = {**json.loads(FIXTURE.read_text())["body"], "stream": False}
    return {
        "small": json.dumps(small).encode(),
        "claude-code-49kb": json.dumps(claude_code).encode(),
        "small-stream": json.dumps({**small, "stream": True}).encode(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(launch: peers.Launch, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own session; stop it (and whatever it started) on leaving."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            launch.command,
            env=launch.env,
            cwd=launch.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_answering(url: str, body: bytes, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until a POST of `body` answers 200 (LiteLLM takes seconds to start)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-600:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(url, content=body, headers=measure.HEADERS, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200: {log.read_text()[-600:]}")


def measure_target(
    name: str, url: str, cases: dict[str, bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """Throughput of every case, then latency at concurrency 1."""
    print(f"measuring {name} …", file=sys.stderr, flush=True)
    throughput = {}
    for case, body in cases.items():
        throughput[case] = measure.load(args.load, url, body, args.connections, args.seconds)
    latency = {
        "small": measure.sequential(url, cases["small"], args.latency_requests, first_byte=False),
        "claude-code-49kb": measure.sequential(
            url, cases["claude-code-49kb"], args.latency_requests, first_byte=False
        ),
        "stream-first-byte": measure.sequential(
            url, cases["small-stream"], args.latency_requests, first_byte=True
        ),
    }
    return {"throughput": throughput, "latency_c1": latency}


def gateway_run(
    name: str, upstream: int, cases: dict[str, bytes], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    folder = tmp / name
    folder.mkdir()
    port = free_port()
    try:
        launch = peers.GATEWAYS[name](folder, port, upstream)
    except peers.Unavailable as e:
        print(f"{name}: not measured: {e}", file=sys.stderr, flush=True)
        return {"status": "unavailable", "reason": str(e)}
    url = f"http://127.0.0.1:{port}/v1/messages"
    log = folder / "server.log"
    with running(launch, log) as process:
        try:
            wait_answering(url, cases["small"], process, log)
        except RuntimeError as e:
            print(f"{name}: not measured: {e}", file=sys.stderr, flush=True)
            return {"status": "failed to start", "reason": str(e)}
        # A warm-up at full load (node's JIT, every pool filled), the same for every gateway.
        measure.load(args.load, url, cases["small"], args.connections, min(3.0, args.seconds))
        result = measure_target(name, url, cases, args)
        result["peak_rss_mb"] = measure.peak_rss_mb(process.pid)
    return {"status": "measured", **result}


def every_provider(upstream: int, models: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS of `multiport serve` over a copy of providers.d, every URL on the mock.

    Each `${NAME:-http…}` URL variable is pointed at the mock (keeping the default's path),
    each variable without a default is given a dummy key, and each port is a free one.
    """
    folder = tmp / "providers.d"
    shutil.copytree(ROOT / "providers.d", folder)
    env = {**os.environ, "MULTIPORT_CACHE_DIR": str(tmp / "every-cache"), "NO_PROXY": "*"}
    ports: dict[str, int] = {}
    for file in sorted(folder.glob("*.yaml")):
        text = file.read_text()
        if re.search(r"(?m)^port:", text):
            ports[file.stem] = free_port()
            text = re.sub(r"(?m)^port:.*$", f"port: {ports[file.stem]}", text)
            file.write_text(text)
        for var, default in re.findall(r"\$\{([A-Z0-9_]+):-(https?://[^}]*)\}", text):
            path = "/" + default.split("/", 3)[3] if default.count("/") >= 3 else ""
            env[var] = f"http://127.0.0.1:{upstream}{path}"
        for var in re.findall(r"\$\{([A-Z0-9_]+)\}", text):
            env.setdefault(var, "bench-key-0123456789")
    command = [sys.executable, "-m", "multiport", "serve", str(folder), "--no-reload"]
    log = tmp / "every-provider.log"
    with running(peers.Launch(command, env, tmp), log) as process:
        counts = wait_catalogs(list(ports.values()), models, process, log)
        small = bodies()["small"]
        for port in ports.values():  # a few requests each, answered or not
            for _ in range(20):
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(f"http://127.0.0.1:{port}/v1/messages", content=small, timeout=10)
        rss = measure.peak_rss_mb(process.pid)
    return {
        "ports": len(ports),
        "catalog_models": models,
        "catalogs_loaded": sum(1 for c in counts if c >= models),
        "catalog_sizes": dict(zip(ports, counts, strict=False)),
        "peak_rss_mb": rss,
    }


def wait_catalogs(
    ports: list[int], models: int, process: subprocess.Popen[bytes], log: Path
) -> list[int]:
    """Each port's catalog size (/health), once they stop growing (they load in the background)."""
    deadline = time.monotonic() + 60
    previous: list[int] = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"multiport exited: {log.read_text()[-600:]}")
        counts = []
        for port in ports:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
                counts.append(int(health.get("catalog", {}).get("size", 0)))
            except (httpx.HTTPError, ValueError, AttributeError):
                counts.append(-1)
        if -1 not in counts and counts == previous and max(counts, default=0) >= models:
            return counts
        previous = counts
        time.sleep(1)
    return previous


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """multiport's req/s over the fastest measured peer's, per case."""
    out: dict[str, Any] = {}
    measured = [n for n, r in results["gateways"].items() if r["status"] == "measured"]
    for case in CASES:
        rps = {n: results["gateways"][n]["throughput"][case]["rps"] for n in measured}
        rivals = {n: v for n, v in rps.items() if n != "multiport"}
        if "multiport" in rps and rivals:
            fastest = max(rivals, key=lambda n: rivals[n])
            out[case] = {
                "fastest_peer": fastest,
                "multiport_over_fastest_peer": rps["multiport"] / rivals[fastest],
            }
    return out


def added_latency(results: dict[str, Any]) -> None:
    """Each gateway's concurrency-1 latency minus the mock's, in place."""
    direct = results["mock"]["latency_c1"]
    for gateway in results["gateways"].values():
        for case, figures in gateway.get("latency_c1", {}).items():
            figures["added_p50_ms"] = figures["p50_ms"] - direct[case]["p50_ms"]
            figures["added_p99_ms"] = figures["p99_ms"] - direct[case]["p99_ms"]


def report(results: dict[str, Any]) -> None:
    measured = [n for n, r in results["gateways"].items() if r["status"] == "measured"]
    setup = results["setup"]
    print(
        f"\nreq/s at {setup['connections']} connections, {setup['seconds']:g} s per case "
        f"({setup['load_generator']}, {setup['cores']} cores, one worker each)"
    )
    head = f"{'case':<18}{'mock direct':>13}" + "".join(f"{n:>20}" for n in measured)
    print(head + f"{'multiport / fastest peer':>26}")
    for case in CASES:
        row = f"{case:<18}{results['mock']['throughput'][case]['rps']:>13,.0f}"
        for name in measured:
            row += f"{results['gateways'][name]['throughput'][case]['rps']:>20,.0f}"
        ratio = results["ratios"].get(case)
        row += f"{ratio['multiport_over_fastest_peer']:>26.2f}" if ratio else f"{'-':>26}"
        print(row)
    print("\nadded latency at concurrency 1 over the mock direct, ms (p50 / p99)")
    print(f"{'case':<18}{'mock direct':>16}" + "".join(f"{n:>20}" for n in measured))
    for case, direct in results["mock"]["latency_c1"].items():
        row = f"{case:<18}{direct['p50_ms']:>7.2f} / {direct['p99_ms']:<6.2f}"
        for name in measured:
            f = results["gateways"][name]["latency_c1"][case]
            row += f"{f['added_p50_ms']:>11.2f} / {f['added_p99_ms']:<6.2f}"
        print(row)
    print(
        "\npeak RSS, MB: "
        + ", ".join(f"{n} {results['gateways'][n]['peak_rss_mb']:.0f}" for n in measured)
    )
    every = results.get("multiport_every_provider")
    if every:
        print(
            f"multiport serve, {every['ports']} ports, catalogs of {every['catalog_models']:,} "
            f"models ({every['catalogs_loaded']} loaded): {every['peak_rss_mb']:.0f} MB"
        )
    for name, r in results["gateways"].items():
        if r["status"] != "measured":
            print(f"{name}: not measured ({r['status']}): {r['reason']}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers",
        default="none",
        help="all, none, or a comma list of claude-code-router,litellm (default: none)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=500,
        help="timed requests per case at concurrency 1 (default 500)",
    )
    parser.add_argument("--catalog-models", type=int, default=5000)
    parser.add_argument(
        "--load",
        choices=["auto", "wrk", "load.py"],
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--png", type=Path, help="draw the comparison here (needs matplotlib)")
    args = parser.parse_args()
    known = [n for n in peers.GATEWAYS if n != "multiport"]
    chosen = known if args.peers == "all" else [] if args.peers == "none" else args.peers.split(",")
    unknown = set(chosen) - set(known)
    if unknown:
        parser.error(f"--peers: unknown {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    args.peers = chosen
    args.load = measure.load_generator(args.load)
    return args


def main() -> None:
    args = arguments()
    cases = bodies()
    results: dict[str, Any] = {
        "setup": {
            "connections": args.connections,
            "seconds": args.seconds,
            "latency_requests": args.latency_requests,
            "load_generator": args.load,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "body_bytes": {case: len(body) for case, body in cases.items()},
        },
        "gateways": {},
    }
    upstream = free_port()
    with tempfile.TemporaryDirectory(prefix="multiport-bench.") as name:
        tmp = Path(name)
        mock = peers.Launch(
            [
                sys.executable,
                str(HERE / "mock_upstream.py"),
                str(upstream),
                str(args.catalog_models),
            ],
            dict(os.environ),
            tmp,
        )
        with running(mock, tmp / "mock.log") as process:
            url = f"http://127.0.0.1:{upstream}/v1/chat/completions"
            wait_answering(url, cases["small"], process, tmp / "mock.log")
            results["mock"] = measure_target("the mock upstream directly", url, cases, args)
            for gateway in ["multiport", *args.peers]:
                results["gateways"][gateway] = gateway_run(gateway, upstream, cases, args, tmp)
            print("measuring multiport serve over every provider …", file=sys.stderr, flush=True)
            results["multiport_every_provider"] = every_provider(upstream, args.catalog_models, tmp)
    added_latency(results)
    results["ratios"] = ratios(results)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.png:
        import plot

        plot.draw(results, args.png)


if __name__ == "__main__":
    main()
