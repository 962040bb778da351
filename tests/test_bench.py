"""A seconds-long run of the benchmark, multiport alone: it completes and its JSON is whole.

No timing is asserted: the figures of a run this short, beside the rest of the suite, say
nothing. Loopback only; no peer is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {"small", "claude-code-49kb", "small-stream"}
LATENCY_CASES = {"small", "claude-code-49kb", "stream-first-byte"}


def test_bench_runs_multiport_alone_and_writes_every_case(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--seconds", "0.5"]
    command += ["--latency-requests", "20", "--catalog-models", "200", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "req/s at 32 connections" in done.stdout

    results = json.loads(out.read_text())
    assert set(results["mock"]["throughput"]) == CASES
    assert set(results["gateways"]) == {"multiport"}
    multiport = results["gateways"]["multiport"]
    assert multiport["status"] == "measured"
    for case in CASES:
        figures = multiport["throughput"][case]
        assert figures["ok"] > 0
        assert figures["errors"] == 0
    assert set(multiport["latency_c1"]) == LATENCY_CASES
    for figures in multiport["latency_c1"].values():
        assert {"p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms"} <= set(figures)
    assert multiport["peak_rss_mb"] > 0
    every = results["multiport_every_provider"]
    assert every["ports"] > 1
    assert every["catalogs_loaded"] > 0
    assert every["peak_rss_mb"] > 0
    assert results["ratios"] == {}
