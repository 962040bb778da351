"""The worked example of docs/templates.md, served for real: an upstream of its own shape
(JSON answers, NDJSON streams) behind `multiport serve`, the real `anthropic` SDK in front."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .conftest import ROOT
from .gateway import Gateway
from .upstream_server import Reply, ScriptedUpstream, Seen, free_port

EXAMPLE = ROOT / "docs" / "examples" / "generate"
TOKENS = ["Hel", "lo", " from ", "the example", "!"]


def generate(seen: Seen) -> Reply:
    """The imaginary upstream: exactly its own request shape, or a 400."""
    body: Any = seen.body
    if seen.path != "/generate" or not isinstance(body, dict):
        return Reply(status=400, json={"error": "no such route"})
    if set(body) != {"model_name", "prompt_turns", "max_new_tokens", "stream"} or not all(
        set(t) == {"speaker", "text"} and t["speaker"] in ("human", "bot")
        for t in body["prompt_turns"]
    ):
        return Reply(status=400, json={"error": f"bad request {body}"})
    tokens = TOKENS[: body["max_new_tokens"]]
    finish = "done" if len(tokens) == len(TOKENS) else "length"
    stats = {"in": len(body["prompt_turns"]), "out": len(tokens)}
    if body["stream"]:
        lines: list[Any] = [{"token": t} for t in tokens]
        return Reply(ndjson=[*lines, {"finish": finish, "stats": stats}])
    return Reply(json={"output": {"text": "".join(tokens), "finish": finish}, "stats": stats})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    upstream = ScriptedUpstream().start()
    upstream.responder = generate
    folder = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, folder / "providers.d")
    path = folder / "providers.d" / "generate.yaml"
    port = free_port()
    path.write_text(re.sub(r"(?m)^port: \d+$", f"port: {port}", path.read_text()))
    gw = Gateway([str(folder / "providers.d")], {"GENERATE_BASE_URL": upstream.url}, [port], folder)
    yield gw
    gw.stop()
    upstream.stop()


def test_the_worked_example_is_in_the_docs_as_it_is_tested() -> None:
    doc = (ROOT / "docs" / "templates.md").read_text()
    for name in ("generate.yaml", "generate-request.j2"):
        assert (EXAMPLE / name).read_text().strip() in doc, name


@pytest.mark.parametrize(("max_tokens", "stop"), [(64, "end_turn"), (2, "max_tokens")])
def test_answers_streamed_or_not(gateway: Gateway, max_tokens: int, stop: str) -> None:
    with anthropic.Anthropic(base_url=gateway.url(), api_key="unused") as client:
        ask: dict[str, Any] = {
            "model": "claude-sonnet-5-5",
            "max_tokens": max_tokens,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hello"}],
        }
        plain = client.messages.create(**ask)
        with client.messages.stream(**ask) as stream:
            streamed = stream.get_final_message()
    for message in (plain, streamed):
        block = message.content[0]
        assert isinstance(block, anthropic.types.TextBlock)
        assert block.text == "".join(TOKENS[:max_tokens])
        assert message.stop_reason == stop
        assert message.usage.input_tokens == 2  # the system turn and the user turn
        assert message.usage.output_tokens == min(max_tokens, len(TOKENS))
