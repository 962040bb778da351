"""Upstream answers are bounded in size and time: a misbehaving upstream on 127.0.0.1, seen
through a `multiport serve` subprocess on each transport, whose peak RSS (VmHWM) stays
under `RSS_CEILING`, and each client told exactly what went wrong."""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from multiport.errors import UpstreamProtocolError
from multiport.framing import LineFramer
from multiport.passthrough import passthrough_stream
from multiport.scrub import Scrubber

from .gateway import Gateway
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, free_ports

ANSWER_BYTES = 1_000_000
LINE_BYTES = 100_000
LIMITS = f"""\
limits: {{answer_bytes: {ANSWER_BYTES}, stream_line_bytes: {LINE_BYTES}}}
timeouts: {{first_byte: 0.5, read: 0.5, total: 1.5}}
mappings:
  - match: .
    target: gpt-4.1
"""
OPENAI = "port: {port}\nbase_url: {base}/v1\nauth:\n  value: Bearer sk-limits-0123456789\n"
ANTHROPIC = (
    "port: {port}\nbase_url: {base}\nwire:\n  dialect: anthropic\n"
    "auth:\n  header: x-api-key\n  value: sk-limits-0123456789\n"
)
# A gateway at rest holds 65-71 MiB here and peaks at 73-74 MiB through this module; each
# answer below took it past 300 MiB (or on for ever) unbounded. What a bounded one may
# add: the limits (1 MB), a few decode steps, buffers.
RSS_CEILING = 120 << 20
# An upstream that keeps sending for as long as the gateway reads.
ENDLESS = b"x" * (64 << 10)
FIRST_CHUNK = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n'
MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    b'"type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":1,"output_tokens":0}}}\n\n'
)
GZIP = {"content-encoding": "gzip"}
WAIT = 5.0  # the longest any answer here may take; every bound below is under 2 s


def gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


@functools.cache
def bomb(start: bytes = b"") -> bytes:
    """`start`, then 100 MB of one byte, gzipped: about 100 KB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"A" * (1 << 20)
    return b"".join([packer.compress(start), *(packer.compress(block) for _ in range(100))]) + (
        packer.flush()
    )


class LimitsGateway(Gateway):
    """Two ports: an OpenAI-style provider, then an Anthropic one (its stream passed through)."""

    @property
    def passthrough(self) -> str:
        return self.url(self.ports[1])

    def peak_rss(self) -> int:
        """The gateway's peak resident memory so far, in bytes (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def assert_bounded(self) -> None:
        peak = self.peak_rss()
        assert peak < RSS_CEILING, f"gateway peak RSS {peak >> 20} MiB"


@pytest.fixture(scope="module", params=["aiohttp", "httpx"])
def gateway(
    request: pytest.FixtureRequest,
    upstream: ScriptedUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LimitsGateway]:
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    providers = tmp / "providers.d"
    providers.mkdir()
    ports = free_ports(2)
    for name, text, port in (("openai", OPENAI, ports[0]), ("claude", ANTHROPIC, ports[1])):
        (providers / f"{name}.yaml").write_text(text.format(port=port, base=upstream.url) + LIMITS)
    env = {"MULTIPORT_TRANSPORT": request.param, "MULTIPORT_CACHE_DIR": str(tmp / "cache")}
    gw = LimitsGateway([str(providers)], env, ports, tmp)
    try:
        yield gw
        peak = gw.peak_rss()
    finally:
        log = gw.stop()
    assert peak < RSS_CEILING, f"gateway peak RSS {peak >> 20} MiB"
    assert "Traceback" not in log, log
    assert "sk-limits-0123456789" not in log, log


def _body(stream: bool) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 5,
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
    }


def _ask(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(url + "/v1/messages", json=_body(False), timeout=WAIT)
    return response, time.monotonic() - started


def _stream(url: str) -> tuple[bytes, float]:
    """The raw bytes of a streamed answer, and how long it took; an answer that goes on
    past `WAIT` seconds or `ANSWER_BYTES` fails the test."""
    started = time.monotonic()
    raw = bytearray()
    with httpx.stream("POST", url + "/v1/messages", json=_body(True), timeout=WAIT) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            raw += chunk
            seconds = time.monotonic() - started
            assert seconds < WAIT, f"still streaming after {seconds:.1f} s"
            assert len(raw) < ANSWER_BYTES, f"{len(raw)} bytes streamed"
    return bytes(raw), time.monotonic() - started


def _error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"]
    message: str = body["error"]["message"]
    return message


def _error_event(raw: bytes, error_type: str) -> str:
    """The message of the stream's one error event, checked to be its end (no success)."""
    events = parse_sse(raw)
    check_stream(events, expect_error=True)
    assert events[-1][1]["error"]["type"] == error_type
    message: str = events[-1][1]["error"]["message"]
    return message


def _reset(upstream: ScriptedUpstream, *replies: Reply) -> None:
    upstream.reset()
    upstream.reply(*replies)


# Finding 1: a complete answer is bounded as received and after decompression.

TOO_LARGE = f"answered more than {ANSWER_BYTES} bytes (limits.answer_bytes"


def test_an_endless_answer_is_cut_at_answer_bytes(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(forever=ENDLESS, gap=0))
    response, seconds = _ask(gateway.url())
    assert TOO_LARGE in _error(response, 502, "api_error")
    assert seconds < 1.4  # the size ended it, not the total time
    gateway.assert_bounded()


def test_a_gzip_bomb_is_cut_at_answer_bytes_after_decompression(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    assert len(bomb()) < ANSWER_BYTES
    _reset(upstream, Reply(raw=[bomb()], headers=GZIP))
    response, _ = _ask(gateway.url())
    assert TOO_LARGE in _error(response, 502, "api_error")
    gateway.assert_bounded()


def test_bytes_after_a_compressed_answer_count_as_received(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    # A small gzip answer, then bytes that decompress to nothing, for ever.
    _reset(upstream, Reply(raw=[gzip(b'{"choices": []}')], forever=ENDLESS, gap=0, headers=GZIP))
    response, seconds = _ask(gateway.url())
    assert TOO_LARGE in _error(response, 502, "api_error")
    assert seconds < 1.4
    gateway.assert_bounded()


def test_a_passthrough_answer_is_bounded_too(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(forever=ENDLESS, gap=0))
    response, _ = _ask(gateway.passthrough)
    assert TOO_LARGE in _error(response, 502, "api_error")
    gateway.assert_bounded()


# Finding 2: each stream line or event is bounded; past it, an error event ends the stream.

TOO_LONG = f"longer than {LINE_BYTES} bytes (limits.stream_line_bytes)"


@pytest.mark.parametrize(
    "piece",
    [
        pytest.param(b"data: " + b"x" * 1000 + b"\n", id="data-lines-without-a-blank-line"),
        pytest.param(b"data:\n" * 1000, id="empty-data-lines"),
        pytest.param(ENDLESS, id="a-line-without-end"),
    ],
)
def test_an_endless_stream_event_ends_in_an_error_event(
    gateway: LimitsGateway, upstream: ScriptedUpstream, piece: bytes
) -> None:
    _reset(upstream, Reply(raw=[FIRST_CHUNK], forever=piece, gap=0))
    raw, seconds = _stream(gateway.url())
    message = _error_event(raw, "api_error")
    assert TOO_LONG in message
    assert "127.0.0.1" in message  # names the upstream
    assert seconds < 1.4
    gateway.assert_bounded()


@pytest.mark.parametrize("passthrough", [False, True], ids=["translated", "passthrough"])
def test_a_gzip_bombed_stream_ends_in_an_error_event(
    gateway: LimitsGateway, upstream: ScriptedUpstream, passthrough: bool
) -> None:
    if passthrough:
        start = MESSAGE_START + b'event: content_block_delta\ndata: {"text":"'
    else:
        start = FIRST_CHUNK + b'data: {"choices":[{"index":0,"delta":{"content":"'
    _reset(upstream, Reply(raw=[bomb(start)], headers=GZIP))
    raw, _ = _stream(gateway.passthrough if passthrough else gateway.url())
    assert len(raw) < 10_000  # the event never reached the client, not even in part
    assert TOO_LONG in _error_event(raw, "api_error")
    gateway.assert_bounded()


def test_a_passthrough_event_without_end_ends_in_an_error_event(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(raw=[MESSAGE_START], forever=b"data: " + b"x" * 1000 + b"\n", gap=0))
    raw, seconds = _stream(gateway.passthrough)
    assert raw.startswith(MESSAGE_START)
    assert TOO_LONG in _error_event(raw, "api_error")
    assert seconds < 1.4
    gateway.assert_bounded()


# Finding 3: first byte, silence and the total time of a call.


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_no_answer_within_first_byte_is_504(
    gateway: LimitsGateway, upstream: ScriptedUpstream, stream: bool
) -> None:
    _reset(upstream, Reply(hang=True))
    started = time.monotonic()
    response = httpx.post(gateway.url() + "/v1/messages", json=_body(stream), timeout=WAIT)
    seconds = time.monotonic() - started
    message = _error(response, 504, "timeout_error")
    assert message == "the upstream 127.0.0.1 sent no answer within 0.5 s (timeouts.first_byte)"
    assert 0.4 < seconds < 1.4


def test_silence_in_a_complete_answer_is_504(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(raw=[b'{"choices": ', b"[]}"], gap=3.0))
    response, seconds = _ask(gateway.url())
    message = _error(response, 504, "timeout_error")
    assert "sent nothing for 0.5 s in the middle of its answer (timeouts.read)" in message
    assert seconds < 1.4


def test_silence_mid_stream_ends_in_a_timeout_event(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(raw=[FIRST_CHUNK, FIRST_CHUNK], gap=3.0))
    raw, seconds = _stream(gateway.url())
    message = _error_event(raw, "timeout_error")
    assert "sent nothing for 0.5 s in the middle of its answer (timeouts.read)" in message
    assert seconds < 1.4


TOTAL = "the upstream 127.0.0.1 exceeded the total time of 1.5 s (timeouts.total)"


def test_a_trickling_complete_answer_ends_at_the_total_time(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(raw=[b'{"choices": '], forever=b" ", gap=0.2))
    response, seconds = _ask(gateway.url())
    assert _error(response, 504, "timeout_error") == TOTAL
    assert 1.4 < seconds < 2.5


@pytest.mark.parametrize(
    ("piece", "gap"),
    [
        pytest.param(b" ", 0.2, id="one-byte-each-0.2s"),
        pytest.param(
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n', 0.001, id="fast"
        ),
    ],
)
def test_a_stream_ends_at_the_total_time(
    gateway: LimitsGateway, upstream: ScriptedUpstream, piece: bytes, gap: float
) -> None:
    _reset(upstream, Reply(raw=[FIRST_CHUNK], forever=piece, gap=gap))
    raw, seconds = _stream(gateway.url())
    assert _error_event(raw, "timeout_error") == TOTAL
    assert 1.4 < seconds < 2.5
    gateway.assert_bounded()


def test_a_trickling_passthrough_stream_ends_at_the_total_time(
    gateway: LimitsGateway, upstream: ScriptedUpstream
) -> None:
    _reset(upstream, Reply(raw=[MESSAGE_START], forever=b":", gap=0.2))
    raw, seconds = _stream(gateway.passthrough)
    assert _error_event(raw, "timeout_error") == TOTAL
    assert 1.4 < seconds < 2.5


# The framing itself: linear in what it is fed, however it is cut.


def test_a_long_line_fed_in_small_pieces_is_framed_in_linear_time() -> None:
    framer = LineFramer("sse", limit=16 << 20)
    line = b"data: " + b"x" * (8 << 20)
    started = time.monotonic()
    out = [p for i in range(0, len(line), 64) for p in framer.feed(line[i : i + 64])]
    out += framer.feed(b"\n\n")
    # Joined once, at the end: quadratic joining would copy ~500 GB here.
    assert time.monotonic() - started < 2.0
    assert out == [line[6:]]


def test_an_event_counts_its_data_lines_and_its_unfinished_line_together() -> None:
    framer = LineFramer("sse", limit=1000, host="up.test")
    list(framer.feed(b"data: " + b"a" * 600 + b"\n"))
    with pytest.raises(UpstreamProtocolError, match=r"up.test sent a stream event longer"):
        list(framer.feed(b"data: " + b"b" * 500))


async def test_a_passthrough_event_fed_in_small_pieces_is_relayed_in_linear_time() -> None:
    event = b'event: content_block_delta\ndata: {"text":"' + b"x" * (8 << 20) + b'"}\n\n'
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(event), 64):
            yield event[i : i + 64]
        yield stop

    started = time.monotonic()
    out = [p async for p in passthrough_stream(pieces(), Scrubber(), "h", 16 << 20)]
    assert time.monotonic() - started < 4.0
    assert out == [event, stop]
