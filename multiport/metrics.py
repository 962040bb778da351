"""Prometheus metrics of the whole process, served by `GET /metrics` on every port.

One registry per process: every port shows every port's series, each labelled by port
(or provider) name. Labels are names from the provider files and fixed words only, never
a client's model name, so the number of series stays bounded.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .breaker import Breaker
    from .requestlog import Record

__all__ = [
    "REGISTRY",
    "catalog_refreshed",
    "exposition",
    "observe",
    "upstream_answered",
    "watch_circuits",
]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# LLM calls: a fast error in tens of milliseconds, a long answer in minutes.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0)

REQUESTS = Counter(
    "multiport_requests",
    "Requests answered, by port, endpoint and HTTP status class (2xx, 4xx, 5xx).",
    ["port", "endpoint", "code"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "multiport_errors",
    "Requests that ended in an error, by Anthropic error type (client_gone: the client left); "
    "a stream that fails after its first byte counts here with its 2xx.",
    ["port", "endpoint", "type"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "multiport_request_duration_seconds",
    "Time from the request to the end of its answer (a stream's last byte).",
    ["port", "endpoint"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
FIRST_TOKEN = Histogram(
    "multiport_time_to_first_token_seconds",
    "Time to a stream's first content event; a complete answer's whole latency.",
    ["port"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "multiport_tokens",
    "Tokens in the answers' usage, by direction (input, output).",
    ["port", "direction"],
    registry=REGISTRY,
)
ROUTER_RETRIES = Counter(
    "multiport_router_retries",
    "Calls a router made again to the same candidate.",
    ["port"],
    registry=REGISTRY,
)
ROUTER_FALLBACKS = Counter(
    "multiport_router_fallbacks",
    "Candidates a router passed over (failed or skipped) before an answer.",
    ["port"],
    registry=REGISTRY,
)
UPSTREAM = Counter(
    "multiport_upstream_responses",
    "Upstream calls by provider and the upstream's HTTP status (none: no status came: "
    "refused, unreachable or timed out before its headers).",
    ["provider", "code"],
    registry=REGISTRY,
)
CATALOG = Counter(
    "multiport_catalog_refreshes",
    "Catalog fetches by provider and result (ok, failed).",
    ["provider", "result"],
    registry=REGISTRY,
)


class _Circuits(Collector):
    """`multiport_circuit_state`: each router candidate's breaker, read when scraped."""

    STATES = ("closed", "open", "half-open")

    def __init__(self) -> None:
        # Held weakly: a router that a reload removed leaves the metrics with its app.
        self.breakers: dict[str, tuple[weakref.ref[Breaker], tuple[str, ...]]] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "multiport_circuit_state",
            "1 for the state a router candidate's circuit is in (closed, open, half-open).",
            labels=["port", "candidate", "state"],
        )
        for port, (ref, candidates) in sorted(self.breakers.items()):
            breaker = ref()
            if breaker is None:
                continue
            for candidate in candidates:
                current = breaker.state(candidate)
                for state in self.STATES:
                    family.add_metric([port, candidate, state], 1.0 if state == current else 0.0)
        yield family


_CIRCUITS = _Circuits()
REGISTRY.register(_CIRCUITS)


def watch_circuits(port: str, breaker: Breaker, candidates: Sequence[str]) -> None:
    """Show a router's breaker (a router built again replaces its old one)."""
    _CIRCUITS.breakers[port] = (weakref.ref(breaker), tuple(candidates))


class _PortSeries:
    """One port and endpoint's labelled series, looked up once."""

    __slots__ = ("fallbacks", "first_token", "input", "latency", "output", "retries")

    def __init__(self, port: str, endpoint: str) -> None:
        self.latency = LATENCY.labels(port, endpoint)
        self.first_token = FIRST_TOKEN.labels(port)
        self.input = TOKENS.labels(port, "input")
        self.output = TOKENS.labels(port, "output")
        self.retries = ROUTER_RETRIES.labels(port)
        self.fallbacks = ROUTER_FALLBACKS.labels(port)


_series: dict[tuple[str, str], _PortSeries] = {}
_CLASSES = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def observe(record: Record, status: int, latency: float) -> None:
    """Count one finished request."""
    key = (record.port, record.endpoint)
    series = _series.get(key)
    if series is None:
        series = _series[key] = _PortSeries(*key)
    REQUESTS.labels(record.port, record.endpoint, _CLASSES.get(status // 100, "5xx")).inc()
    if record.outcome:
        ERRORS.labels(record.port, record.endpoint, record.outcome).inc()
    series.latency.observe(latency)
    if record.endpoint != "messages":
        return
    if record.first_token is not None:
        series.first_token.observe(record.first_token)
    if record.input_tokens:
        series.input.inc(record.input_tokens)
    if record.output_tokens:
        series.output.inc(record.output_tokens)
    if record.retries:
        series.retries.inc(record.retries)
    if record.fallbacks:
        series.fallbacks.inc(record.fallbacks)


def upstream_answered(provider: str, status: int) -> None:
    """One upstream call and its HTTP status (0: none came)."""
    UPSTREAM.labels(provider, str(status) if status else "none").inc()


def catalog_refreshed(provider: str, ok: bool) -> None:
    CATALOG.labels(provider, "ok" if ok else "failed").inc()


def exposition(accept: str = "") -> tuple[bytes, str]:
    """Every metric, in the format the scraper asks for (Prometheus text by default)."""
    encode, content_type = choose_encoder(accept)
    return encode(REGISTRY), content_type
