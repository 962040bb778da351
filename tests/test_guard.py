"""Connection limits of a port, against a real `multiport serve` on loopback: idle, slow
and oversized clients are cut off with an Anthropic error, a full port says 529, and a
client that leaves ends its upstream call at once."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .gateway import Gateway
from .upstream_server import Reply, ScriptedUpstream, free_ports

PROVIDER = """\
port: {port}
base_url: {base}
auth:
  value: Bearer ${{GUARD_KEY}}
mappings:
  - match: .
    target: gpt-4.1
limits:
  header_seconds: 0.6
  body_seconds: 0.6
  keep_alive_seconds: {keep_alive}
  header_bytes: 4000
  request_bytes: 100000
  connections: {connections}
  concurrent_requests: 2
"""

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


class HangingUpstream:
    """Accepts a request and never answers; counts connections closed by the gateway."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.requests = 0
        self.closed = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                with self._lock:
                    self.requests += 1
                while conn.recv(65536):  # until the gateway hangs up
                    pass
            except OSError:
                pass
            with self._lock:
                self.closed += 1

    def wait(self, what: str, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if getattr(self, what) >= count:
                return True
            time.sleep(0.02)
        return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[HangingUpstream]:
    server = HangingUpstream()
    yield server
    server.sock.close()


def _gateway(
    tmp: Path, upstream: HangingUpstream, *, keep_alive: float, connections: int
) -> Gateway:
    providers = tmp / "providers.d"
    providers.mkdir()
    port, other = free_ports(2)
    (providers / "guarded.yaml").write_text(
        PROVIDER.format(
            port=port, base=upstream.url, keep_alive=keep_alive, connections=connections
        )
    )
    (providers / "other.yaml").write_text(
        PROVIDER.format(port=other, base=upstream.url, keep_alive=5, connections=100)
    )
    return Gateway([str(providers)], {"GUARD_KEY": "sk-guard-secret"}, [port, other], tmp)


@pytest.fixture(scope="module")
def gateway(
    upstream: HangingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gw = _gateway(tmp_path_factory.mktemp("guard"), upstream, keep_alive=0.6, connections=50)
    yield gw
    gw.stop()


def _connect(gateway: Gateway, port: int | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port or gateway.ports[0]), timeout=5)
    return sock


def _read_all(sock: socket.socket, seconds: float = 5) -> tuple[bytes, float]:
    """Everything the gateway sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    return data, time.monotonic() - started


def _error(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    parsed = json.loads(body)
    assert parsed["type"] == "error"
    assert parsed["request_id"].startswith("req_")
    return status, parsed["error"]


def _request_head(length: int) -> bytes:
    return (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_a_connection_that_sends_nothing_is_closed(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        data, took = _read_all(sock)
    assert data == b""  # nothing was asked: nothing to answer
    assert 0.4 < took < 2.5  # header_seconds: a new connection has that long to ask


def test_slow_headers_get_408_and_the_connection_closes(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        for _ in range(50):  # one header byte every 0.1 s, never done, until answered
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.sendall(b"x")
        data, _ = _read_all(sock)
    status, error = _error(data)
    assert (status, error["type"]) == (408, "timeout_error")
    assert "limits.header_seconds" in error["message"]
    assert time.monotonic() - started < 3


def test_oversized_headers_get_431_before_they_end(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        for _ in range(200):  # up to 10 MB of one header value, never ended, until answered
            if select.select([sock], [], [], 0.05)[0]:
                break
            sock.sendall(b"a" * 50_000)
            sent += 50_000
        data, _ = _read_all(sock)
    status, error = _error(data)
    assert status == 431
    assert "limits.header_bytes" in error["message"]
    assert sent < 1_000_000  # answered long before the header could end


def test_a_declared_body_over_the_limit_is_refused_at_once(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_request_head(60_000_000) + b"{")
        data, took = _read_all(sock)
    status, error = _error(data)
    assert (status, error["type"]) == (413, "request_too_large")
    assert "limits.request_bytes" in error["message"]
    assert took < 0.5  # not held for the missing 60 MB


def test_a_chunked_body_over_the_limit_is_refused(gateway: Gateway) -> None:
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (50_000, b"a" * 50_000)
    with _connect(gateway) as sock:
        sock.sendall(head)
        try:
            for _ in range(10):
                sock.sendall(chunk)
        except OSError:
            pass
        data, _ = _read_all(sock)
    status, error = _error(data)
    assert (status, error["type"]) == (413, "request_too_large")


def test_a_slow_body_gets_408(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_request_head(1000) + b'{"model":')
        data, took = _read_all(sock)
    status, error = _error(data)
    assert (status, error["type"]) == (408, "timeout_error")
    assert "limits.body_seconds" in error["message"]
    assert took < 2


def test_a_client_that_leaves_ends_its_upstream_call(
    gateway: Gateway, upstream: HangingUpstream
) -> None:
    before_requests, before_closed = upstream.requests, upstream.closed
    body = json.dumps(BODY).encode()
    with _connect(gateway) as sock:
        sock.sendall(_request_head(len(body)) + body)
        assert upstream.wait("requests", before_requests + 1, 5)
    # The client has gone; the gateway must hang up on the upstream at once, not after
    # its timeouts (minutes).
    assert upstream.wait("closed", before_closed + 1, 2)
    assert httpx.get(gateway.url() + "/health", timeout=2).status_code == 200
    assert "Traceback" not in gateway.log()


def test_a_provider_at_its_request_limit_answers_529_at_once(
    gateway: Gateway, upstream: HangingUpstream
) -> None:
    body = json.dumps(BODY).encode()
    held = [_connect(gateway) for _ in range(2)]
    try:
        before = upstream.requests
        for sock in held:
            sock.sendall(_request_head(len(body)) + body)
        assert upstream.wait("requests", before + 2, 5)
        started = time.monotonic()
        answer = httpx.post(gateway.url() + "/v1/messages", json=BODY, timeout=5)
        assert time.monotonic() - started < 1
        assert answer.status_code == 529
        assert answer.json()["error"]["type"] == "overloaded_error"
        assert "limits.concurrent_requests" in answer.json()["error"]["message"]
    finally:
        for sock in held:
            sock.close()
    # The places come back when those clients leave.
    deadline = time.monotonic() + 3
    status = 529
    while status == 529 and time.monotonic() < deadline:
        try:
            status = httpx.post(gateway.url() + "/v1/messages", json=BODY, timeout=0.3).status_code
        except httpx.ReadTimeout:
            status = 0  # accepted: it waits on the hanging upstream
    assert status != 529


def test_a_full_port_answers_529_and_other_ports_serve(
    upstream: HangingUpstream, tmp_path: Path
) -> None:
    gateway = _gateway(tmp_path, upstream, keep_alive=5, connections=4)
    try:
        held = [_connect(gateway) for _ in range(4)]
        time.sleep(0.2)
        with _connect(gateway) as extra:
            data, _ = _read_all(extra)
        status, error = _error(data)
        assert (status, error["type"]) == (529, "overloaded_error")
        assert "limits.connections" in error["message"]
        assert httpx.get(gateway.url(gateway.ports[1]) + "/health", timeout=1).status_code == 200
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(gateway.url() + "/health", timeout=1).status_code == 200
    finally:
        gateway.stop()


def test_pipelined_requests_over_the_header_limit_together_are_served(gateway: Gateway) -> None:
    one = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    count = 3000  # about 100 KB in one write: more than header_bytes, each head small
    with _connect(gateway) as sock:
        sock.sendall(one * count)
        sock.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1 200") < count:
            piece = sock.recv(1 << 20)
            assert piece, f"closed after {data.count(b'HTTP/1.1 200')} answers"
            data += piece
    assert b" 431 " not in data


def test_malformed_http_gets_an_anthropic_400(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n")
        data, _ = _read_all(sock)
    status, error = _error(data)
    assert (status, error["type"]) == (400, "invalid_request_error")
    assert "malformed HTTP" in error["message"]


def test_a_client_that_stops_reading_is_disconnected_and_frees_its_place(
    tmp_path: Path,
) -> None:
    upstream = ScriptedUpstream().start()
    upstream.strict = False
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 60_000 + b'"}}]}\n\n'
    upstream.responder = lambda seen: Reply(forever=chunk, gap=0.001)
    providers = tmp_path / "providers.d"
    providers.mkdir()
    (port,) = free_ports(1)
    text = PROVIDER.format(port=port, base=upstream.url + "/v1", keep_alive=5, connections=50)
    (providers / "p.yaml").write_text(text + "  send_seconds: 1\n")
    gateway = Gateway([str(providers)], {"GUARD_KEY": "sk-guard-secret"}, [port], tmp_path)
    body = json.dumps({**BODY, "stream": True}).encode()
    try:
        readers = [_connect(gateway) for _ in range(2)]  # the limit: 2 in flight
        for sock in readers:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(_request_head(len(body)) + body)  # and never read
        time.sleep(0.5)
        full = httpx.post(gateway.url() + "/v1/messages", json=BODY, timeout=5)
        assert full.status_code == 529  # both places held by clients that do not read
        # After send_seconds the gateway gives up on them, and the places come back.
        deadline = time.monotonic() + 8
        while full.status_code == 529 and time.monotonic() < deadline:
            time.sleep(0.2)
            with httpx.stream(
                "POST", gateway.url() + "/v1/messages", json={**BODY, "stream": True}, timeout=5
            ) as full:
                pass
        assert full.status_code == 200
        for sock in readers:
            sock.close()
    finally:
        gateway.stop()
        upstream.stop()


def test_oversized_headers_in_one_write_get_431(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 10_000 + b"\r\n\r\n")
        data, _ = _read_all(sock)
    status, _ = _error(data)
    assert status == 431
