"""A router port served for real in front of two scripted upstreams (and one that refuses
connections), the `anthropic` SDK as the client: fallback, retries, circuit breaking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from .gateway import Gateway
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, Seen, chat_completion, free_ports, text_chunks

ASK: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "Hi"}],
}


class Upstreams:
    """Two scripted upstreams and a port nothing listens on."""

    def __init__(self) -> None:
        self.alpha = ScriptedUpstream().start()
        self.beta = ScriptedUpstream().start()
        self.alpha_replies: list[Reply] = []
        self.alpha.responder = self._alpha
        self.beta.responder = _beta

    def _alpha(self, seen: Seen) -> Reply:
        return self.alpha_replies.pop(0) if self.alpha_replies else Reply(status=503, json={})

    def calls(self, server: ScriptedUpstream) -> int:
        return sum(s.method == "POST" for s in server.seen)

    def stop(self) -> None:
        self.alpha.stop()
        self.beta.stop()


def _beta(seen: Seen) -> Reply:
    body: Any = seen.body
    if body.get("stream"):
        return Reply(sse=text_chunks("Hello ", "from beta."))
    return Reply(json=chat_completion("Hello from beta."))


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    servers = Upstreams()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("router") / "providers.d"
    folder.mkdir()
    router_port, alpha_port, beta_port, dead_port, closed = free_ports(5)
    for name, port, url in (
        ("alpha", alpha_port, upstreams.alpha.url),
        ("beta", beta_port, upstreams.beta.url),
        ("dead", dead_port, f"http://127.0.0.1:{closed}"),  # nothing listens there
    ):
        (folder / f"{name}.yaml").write_text(
            f"port: {port}\nbase_url: {url}/v1\nauth:\n  value: Bearer sk-{name}-0123456789\n"
            "mappings:\n  - match: .\n    target: gpt-4.1\n"
        )
    (folder / "router.yaml").write_text(
        f"port: {router_port}\nrouter:\n  rules:\n"
        "    - when: {model: opus}\n      to: [dead/gpt-4.1, beta/gpt-4.1]\n"
        "    - to: [alpha/gpt-4.1, beta/gpt-4.1]\n"
        "  retry: {attempts: 1, budget: 20, attempt_timeout: 2}\n"
        "  breaker: {failures: 3, cool_down: 1.5}\n"
    )
    env = {"MULTIPORT_CACHE_DIR": str(folder.parent)}
    gw = Gateway([str(folder)], env, [router_port, alpha_port, beta_port], folder.parent)
    yield gw
    assert "Traceback" not in gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url(), api_key="unused", max_retries=0) as sdk:
        yield sdk


def _answer(client: anthropic.Anthropic, streamed: bool, **extra: Any) -> str:
    ask = {**ASK, **extra}
    if streamed:
        with client.messages.stream(**ask) as stream:
            message = stream.get_final_message()
    else:
        message = client.messages.create(**ask)
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert message.stop_reason == "end_turn"
    return block.text


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=503, json={"error": {"message": "overloaded"}}),
        Reply(status=429, json={}, headers={"retry-after": "3600"}),
    ],
    ids=["503", "429-retry-after-an-hour"],
)
def test_a_failing_first_candidate_gives_way_to_the_next_provider(
    client: anthropic.Anthropic, upstreams: Upstreams, streamed: bool, failure: Reply
) -> None:
    upstreams.alpha.seen.clear()
    upstreams.alpha_replies[:] = [failure]
    started = time.monotonic()
    assert _answer(client, streamed) == "Hello from beta."
    assert upstreams.calls(upstreams.alpha) == 1  # tried once, and an hour's Retry-After not waited
    assert time.monotonic() - started < 10
    _reset_breaker(client, upstreams)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_provider_that_refuses_connections_gives_way(
    client: anthropic.Anthropic, streamed: bool
) -> None:
    assert _answer(client, streamed, model="claude-opus-5-5") == "Hello from beta."


def test_a_stream_that_fails_after_its_first_byte_ends_with_an_error_event(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    upstreams.alpha.seen.clear()
    upstreams.beta.seen.clear()
    cut = Reply(sse=[{"choices": [{"index": 0, "delta": {"content": "Hel"}}]}])  # no finish
    upstreams.alpha_replies[:] = [cut]
    response = httpx.post(f"{gateway.url()}/v1/messages", json={**ASK, "stream": True}, timeout=10)
    events = parse_sse(response.content)
    check_stream(events, expect_error=True)
    assert [n for n, _ in events if n == "content_block_delta"]  # the first bytes went out
    assert upstreams.calls(upstreams.beta) == 0  # committed: never retried elsewhere


def test_a_candidate_that_keeps_failing_is_skipped_then_tried_again(
    gateway: Gateway, client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    upstreams.alpha.seen.clear()
    upstreams.alpha_replies.clear()  # alpha answers 503 to everything
    for _ in range(3):
        assert _answer(client, False) == "Hello from beta."
    assert upstreams.calls(upstreams.alpha) == 3
    health = httpx.get(f"{gateway.url()}/health", timeout=5).json()
    assert health["candidates"]["alpha/gpt-4.1"]["state"] == "open"
    assert _answer(client, False) == "Hello from beta."
    assert upstreams.calls(upstreams.alpha) == 3  # open: skipped without a call
    time.sleep(1.6)  # the cool-down
    upstreams.alpha_replies[:] = [Reply(json=chat_completion("Hello from alpha."))]
    assert _answer(client, False) == "Hello from alpha."  # half-open: tried, and closed again
    health = httpx.get(f"{gateway.url()}/health", timeout=5).json()
    assert "alpha/gpt-4.1" not in health["candidates"]


def _reset_breaker(client: anthropic.Anthropic, upstreams: Upstreams) -> None:
    """A success through alpha closes its circuit, so tests do not see each other's state."""
    upstreams.alpha_replies[:] = [Reply(json=chat_completion("Hello from alpha."))]
    assert _answer(client, False) == "Hello from alpha."


def test_every_candidate_failing_is_one_clear_error(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    upstreams.beta.responder = lambda seen: Reply(status=500, json={"error": {"message": "down"}})
    try:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(**{**ASK, "model": "claude-opus-5-5"})
    finally:
        upstreams.beta.responder = _beta
    message = str(caught.value)
    assert "every candidate failed" in message
    assert "dead/gpt-4.1" in message
    assert "beta/gpt-4.1" in message


@pytest.mark.parametrize("streamed", [False, True])
def test_a_candidate_that_hangs_gives_way_after_its_attempt_timeout(
    client: anthropic.Anthropic, upstreams: Upstreams, streamed: bool
) -> None:
    upstreams.alpha_replies[:] = [Reply(hang=True)]
    assert _answer(client, streamed) == "Hello from beta."
    _reset_breaker(client, upstreams)


def test_a_stream_whose_first_event_is_an_error_gives_way(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    upstreams.alpha_replies[:] = [Reply(sse=[{"error": {"message": "upstream busy"}}])]
    assert _answer(client, True) == "Hello from beta."
    _reset_breaker(client, upstreams)


def test_a_listed_provider_model_routes_to_itself(
    gateway: Gateway, client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    listed = [m["id"] for m in httpx.get(f"{gateway.url()}/v1/models", timeout=5).json()["data"]]
    assert "beta/gpt-4.1" in listed
    upstreams.alpha.seen.clear()
    assert _answer(client, False, model="beta/gpt-4.1") == "Hello from beta."
    assert upstreams.calls(upstreams.alpha) == 0


def test_models_lists_the_aliases_and_every_candidate_in_both_shapes(gateway: Gateway) -> None:
    anthropic_shape = httpx.get(f"{gateway.url()}/v1/models", timeout=5).json()
    ids = [m["id"] for m in anthropic_shape["data"]]
    assert ids[0].startswith("claude-")
    assert {"alpha/gpt-4.1", "beta/gpt-4.1", "dead/gpt-4.1"} <= set(ids)
    openai_shape = httpx.get(f"{gateway.url()}/v1/models?format=openai", timeout=5).json()
    assert openai_shape["object"] == "list"
    assert [m["id"] for m in openai_shape["data"]] == ids
