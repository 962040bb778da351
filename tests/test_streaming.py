"""The recorded stream corpus through the generic stream translation, in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from multiport.answer import fold, message_events
from multiport.compile import load_providers
from multiport.contracts import StreamEvent, ToolCallDelta
from multiport.framing import LineFramer
from multiport.relay import ending_in_error_event, translate_stream
from multiport.scrub import Scrubber
from multiport.spec import OptionsSpec
from multiport.streaming import StreamState, encode_events
from multiport.toolids import ToolNames

from .stream_checker import check_stream, parse_sse
from .whole_answers import ollama_whole, openai_whole

CORPUS = sorted((Path(__file__).parent / "data" / "streams").glob("*.json"))


def _template(dialect: str, tmp_path: Path) -> Any:
    (tmp_path / "p.yaml").write_text(
        f"port: 9000\nbase_url: http://x\nwire:\n  dialect: {dialect}\n"
    )
    return load_providers([str(tmp_path / "p.yaml")]).providers[0].wire.stream


async def _pieces(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(raw), size):
        yield raw[i : i + size]


async def _run(case: dict[str, Any], tmp_path: Path) -> bytes:
    options = msgspec.convert(case.get("options", {}), OptionsSpec)
    state = _state(options)
    context = {"request": {}, "options": msgspec.to_builtins(options), "model": "upstream-model"}
    raw = case["raw"].encode("utf-8")
    out = b""
    frames = translate_stream(
        _pieces(raw, case.get("chunk_size", 64)),
        state,
        _template(case["dialect"], tmp_path),
        context,
        framing=case["framing"],
        ping_interval=30,
        host="upstream.test",
    )
    async for frame in ending_in_error_event(frames, Scrubber(), "test"):
        out += frame
    return out


def _state(options: OptionsSpec) -> StreamState:
    return StreamState(
        "claude-test", ToolNames(64), 5, options.reasoning == "thinking", options.tool_stream
    )


@pytest.mark.parametrize(
    "path",
    [p for p in CORPUS if not json.loads(p.read_text())["expect"].get("error")],
    ids=lambda p: p.stem,
)
async def test_streamed_and_complete_answers_agree(path: Path, tmp_path: Path) -> None:
    """The same upstream answer, streamed or not, gives the same stop reason and usage."""
    case = json.loads(path.read_text())  # noqa: ASYNC240 - a small test file
    options = msgspec.convert(case.get("options", {}), OptionsSpec)
    streamed = check_stream(parse_sse(await _run(case, tmp_path)))
    raw = case["raw"].encode("utf-8")
    if case["dialect"] == "ollama-chat":
        whole = ollama_whole(raw)
    else:
        whole = openai_whole(raw, snapshots=options.tool_stream.arguments == "snapshots")
    (tmp_path / "p.yaml").write_text(
        f"port: 9000\nbase_url: http://x\nwire:\n  dialect: {case['dialect']}\n"
    )
    template = load_providers([str(tmp_path / "p.yaml")]).providers[0].wire.response
    assert template is not None
    context = {"request": {}, "options": msgspec.to_builtins(options), "model": "upstream-model"}
    answer = template.render(response=whole, **context)
    complete = fold(message_events(_state(options), answer))
    assert complete["stop_reason"] == streamed["stop_reason"]
    assert complete["usage"] == streamed["usage"]
    # A complete answer has no order between its text and its calls; a stream does.
    assert sorted(b["type"] for b in complete["content"]) == sorted(
        b["type"] for b in streamed["content"]
    )


def test_corpus_is_broad() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
async def test_recorded_stream(path: Path, tmp_path: Path) -> None:
    case = json.loads(path.read_text())  # noqa: ASYNC240 - a small test file
    events = parse_sse(await _run(case, tmp_path))
    expect = case["expect"]
    if expect.get("error"):
        check_stream(events, expect_error=True)
        assert events[-1][1]["error"]["type"] in ("api_error", "timeout_error")
        if "message" in expect:
            assert expect["message"] in events[-1][1]["error"]["message"]
        return
    message = check_stream(events)
    got = [
        {k: v for k, v in block.items() if k in ("type", "text", "thinking", "name", "input")}
        for block in message["content"]
    ]
    assert got == expect["content"]
    assert message["stop_reason"] == expect["stop_reason"]
    for key, value in expect.get("usage", {}).items():
        assert message["usage"][key] == value


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_sse_framer_any_split(size: int) -> None:
    raw = 'data: {"a": "é"}\r\n\r\n: keep-alive\n\ndata:{"b":1}\r\rdata: x\ndata: y\n\n'.encode()
    framer = LineFramer("sse")
    out = []
    for i in range(0, len(raw), size):
        out += list(framer.feed(raw[i : i + size]))
    out += list(framer.close())
    assert out == ['{"a": "é"}'.encode(), b'{"b":1}', b"x\ny"]


def test_ndjson_framer_last_line_without_newline() -> None:
    framer = LineFramer("ndjson")
    out = list(framer.feed(b'{"a":1}\n\n{"b"')) + list(framer.feed(b":2}")) + list(framer.close())
    assert out == [b'{"a":1}', b'{"b":2}']


def test_nothing_after_finish() -> None:
    state = StreamState("m", ToolNames(64))
    state.start()
    state.feed(StreamEvent(text="a", stop_reason="end_turn"))
    end = encode_events(state.finish())
    assert end.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert state.feed(StreamEvent(text="late")) == []
    assert state.finish() == []


def test_long_tool_names_are_restored_in_stream() -> None:
    names = ToolNames(64)
    long_name = "mcp__server__" + "x" * 80
    short = names.upstream(long_name)
    assert len(short) <= 64
    state = StreamState("m", names)
    piece = ToolCallDelta(index=0, id="c1", name=short, arguments="{}")
    events = [
        state.start(),
        *state.feed(StreamEvent(tool_calls=[piece], stop_reason="tool_use")),
        *state.finish(),
    ]
    frames = encode_events(events)
    message = check_stream(parse_sse(frames))
    assert message["content"][0]["name"] == long_name


def test_a_stream_event_longer_than_the_limit_is_an_upstream_error() -> None:
    from multiport.errors import UpstreamProtocolError
    from multiport.framing import MAX_PAYLOAD

    framer = LineFramer("sse")
    piece = b"x" * (1 << 20)

    def feed_a_line_that_never_ends() -> None:
        for _ in range(MAX_PAYLOAD // len(piece) + 1):
            list(framer.feed(piece))

    with pytest.raises(UpstreamProtocolError, match="longer than"):
        feed_a_line_that_never_ends()


def test_many_events_in_one_read_are_all_framed() -> None:
    framer = LineFramer("sse")
    raw = b"".join(b'data: {"n": %d}\n\n' % i for i in range(20_000))
    assert len(list(framer.feed(raw))) == 20_000
