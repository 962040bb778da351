"""`router:` of a provider file: a port with no upstream of its own that routes to others."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["BreakerSpec", "RetrySpec", "RouteRuleSpec", "RouteWhenSpec", "RouterSpec"]


class RouteWhenSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a request must be for its rule to apply; every condition given must hold."""

    model: Annotated[
        str | None,
        Meta(
            description="Regex searched in the client's model name (RE2 syntax: no lookaround "
            "or backreferences)."
        ),
    ] = None
    background: Annotated[
        bool | None,
        Meta(description="The client's small background model is asked (`background_model`)."),
    ] = None
    thinking: Annotated[
        bool | None,
        Meta(description="The request asks for extended thinking with a budget (`enabled`)."),
    ] = None
    min_input_tokens: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(description="The estimated input is at least this many tokens (long context)."),
    ] = None
    images: Annotated[bool | None, Meta(description="The request holds an image.")] = None
    web_search: Annotated[
        bool | None, Meta(description="The request offers a web search server tool.")
    ] = None


class RouteRuleSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One rule: the first whose conditions hold picks the candidates, tried in order."""

    name: Annotated[str | None, Meta(description="A name for logs, /info and `route`.")] = None
    when: Annotated[RouteWhenSpec, Meta(description="Conditions; none given: every request.")] = (
        RouteWhenSpec()
    )
    to: Annotated[
        list[str],
        Meta(
            description="Candidates as `provider/model`: the provider file's name, then the "
            "model id as that provider knows it (it may hold `/` itself)."
        ),
    ]


class RetrySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Retries of one candidate before the next; the whole request stays within `budget`."""

    attempts: Annotated[int, Meta(ge=1, le=10, description="Calls of one candidate.")] = 2
    backoff: Annotated[
        float, Meta(ge=0, description="First wait, in seconds; doubled each time, with jitter.")
    ] = 0.5
    max_backoff: Annotated[float, Meta(gt=0, description="Longest wait between calls.")] = 4.0
    max_retry_after: Annotated[
        float,
        Meta(
            ge=0,
            description="A `Retry-After` up to this many seconds is waited for; a longer one "
            "moves on to the next candidate at once.",
        ),
    ] = 10.0
    attempt_timeout: Annotated[
        float,
        Meta(
            gt=0,
            description="Seconds one call may take to answer (its first byte, for a stream; "
            "the whole answer otherwise) before the next candidate is tried.",
        ),
    ] = 30.0
    budget: Annotated[
        float, Meta(gt=0, description="Seconds the routing of one request may take in all.")
    ] = 120.0


class BreakerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A candidate that keeps failing is skipped for a while."""

    failures: Annotated[
        int, Meta(ge=1, description="Consecutive failures that open the circuit.")
    ] = 3
    cool_down: Annotated[
        float, Meta(gt=0, description="Seconds an open circuit skips its candidate.")
    ] = 30.0


class RouterSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Ordered rules over the other providers, with fallback, retries and circuit breaking."""

    rules: Annotated[list[RouteRuleSpec], Meta(description="Ordered rules; the first match wins.")]
    background_model: Annotated[
        str,
        Meta(
            description="Regex (RE2 syntax) of the client's small background model, for "
            "`when.background` (Claude Code's is a `haiku` name)."
        ),
    ] = "haiku"
    retry: Annotated[RetrySpec, Meta(description="Retries of one candidate.")] = RetrySpec()
    breaker: Annotated[BreakerSpec, Meta(description="Circuit breaking.")] = BreakerSpec()
