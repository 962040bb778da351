"""Draw a run's comparison as a PNG: req/s per case, and latency added at concurrency 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {
    "mock direct": "#bbbbbb",
    "multiport": "#2a6fdb",
    "claude-code-router": "#e07b39",
    "litellm": "#3aa35b",
}


def draw(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--png needs matplotlib: pip install -e '.[bench]'") from None
    measured = [n for n, r in results["gateways"].items() if r["status"] == "measured"]
    cases = list(results["mock"]["throughput"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    series = [("mock direct", results["mock"]), *((n, results["gateways"][n]) for n in measured)]
    width = 0.8 / len(series)
    for i, (name, result) in enumerate(series):
        xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(cases))]
        values = [result["throughput"][case]["rps"] for case in cases]
        bars = left.bar(xs, values, width, label=name, color=COLOURS.get(name))
        left.bar_label(bars, fmt="{:,.0f}", fontsize=7, rotation=90, padding=2)
    left.set_yscale("log")
    top = max(r["throughput"][c]["rps"] for _, r in series for c in cases)
    left.set_ylim(top=top * 6)  # room for the legend above the bars
    left.set_xticks(range(len(cases)), cases)
    left.set_ylabel("requests per second (log scale)")
    setup = results["setup"]
    left.set_title(f"{setup['connections']} connections, {setup['cores']} cores, one worker")
    left.legend(fontsize=8)

    latency_cases = list(results["mock"]["latency_c1"])
    width = 0.8 / max(1, len(measured))
    for i, name in enumerate(measured):
        xs = [c + (i - (len(measured) - 1) / 2) * width for c in range(len(latency_cases))]
        figures = results["gateways"][name]["latency_c1"]
        p50 = [figures[case]["added_p50_ms"] for case in latency_cases]
        p99 = [figures[case]["added_p99_ms"] for case in latency_cases]
        right.bar(xs, p99, width, color=COLOURS.get(name), alpha=0.35)
        bars = right.bar(xs, p50, width, label=f"{name} (p50; pale: p99)", color=COLOURS.get(name))
        right.bar_label(bars, fmt="{:.1f}", fontsize=7, padding=2)
    right.set_xticks(range(len(latency_cases)), latency_cases)
    right.set_ylabel("ms added over calling the mock directly")
    right.set_title("latency added at concurrency 1")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
