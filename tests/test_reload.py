"""Hot reload and graceful shutdown, against a real `multiport serve` on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .gateway import Gateway
from .stream_checker import parse_sse
from .upstream_server import Reply, ScriptedUpstream, Seen, chat_completion, free_ports, text_chunks

PROVIDER = """\
port: {port}
base_url: {upstream}/v1
auth:
  value: Bearer ${{RELOAD_KEY}}
mappings:
  - match: .
    target: {target}
"""
BODY = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


_STREAMS = {
    "long-stream": Reply(sse=text_chunks(*["x"] * 40), gap=0.25),
    "three-seconds": Reply(sse=text_chunks(*["x"] * 12), gap=0.25),
}


def _answer(seen: Seen) -> Reply:
    """By the upstream model: `slow`, `hang`, `echo` (a 400 quoting the request), and
    streams that last (`long-stream`, `three-seconds`); else a quick answer."""
    body = seen.body if isinstance(seen.body, dict) else {}
    model = str(body.get("model"))
    if body.get("stream"):
        return _STREAMS.get(model, Reply(sse=text_chunks("Hel", "lo"), gap=0.1))
    replies = {
        "slow": Reply(json=chat_completion("slow answer"), delay=1.5),
        "hang": Reply(hang=True),
        "echo": Reply(status=400, json={"error": {"message": f"bad request: {body}"}}),
    }
    return replies.get(model, Reply(json=chat_completion(f"from {model}")))


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.strict = False
    server.responder = _answer
    yield server
    server.stop()


def _write(folder: Path, name: str, port: int, upstream: ScriptedUpstream, target: str) -> None:
    text = PROVIDER.format(port=port, upstream=upstream.url, target=target)
    (folder / f"{name}.yaml").write_text(text)


def _until(check: object, seconds: float = 8) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def _text(port: int) -> str:
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=BODY, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content"][0]["text"])


def _serve(folder: Path, ports: list[int], tmp: Path, *extra: str) -> Gateway:
    return Gateway([str(folder), *extra], {"RELOAD_KEY": "sk-reload-secret"}, ports, tmp)


def test_files_added_changed_broken_and_removed_while_serving(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    a, b = free_ports(2)
    _write(folder, "alpha", a, upstream, "one")
    gateway = _serve(folder, [a], tmp_path)
    try:
        assert _text(a) == "from one"
        version = httpx.get(f"http://127.0.0.1:{a}/info").json()["file_version"]

        # A new file brings its port up.
        _write(folder, "beta", b, upstream, "two")
        assert _until(lambda: _text(b) == "from two")

        # A changed file is swapped; /info shows the new version.
        _write(folder, "alpha", a, upstream, "three")
        assert _until(lambda: _text(a) == "from three")
        assert httpx.get(f"http://127.0.0.1:{a}/info").json()["file_version"] != version

        # A broken edit is reported with its line; the version before keeps serving.
        (folder / "alpha.yaml").write_text(f"port: {a}\nbase_url: 12\nmappings: nope\n")
        assert _until(lambda: "alpha.yaml:2" in gateway.log())
        assert _text(a) == "from three"

        # A removed file's port closes; the others serve on.
        (folder / "beta.yaml").unlink()
        assert _until(lambda: not _listening(b))
        assert _text(a) == "from three"
    finally:
        log = gateway.stop()
    assert "Traceback" not in log


def test_a_request_in_flight_across_a_reload_completes(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "slow")
    gateway = _serve(folder, [a], tmp_path)
    try:
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"http://127.0.0.1:{a}/v1/messages", json=BODY, timeout=10)
            )
        )
        waiting.start()
        time.sleep(0.3)  # the request waits on the slow upstream
        _write(folder, "alpha", a, upstream, "four")
        assert _until(lambda: _text(a) == "from four")
        waiting.join(10)
        assert answers[0].status_code == 200
        assert answers[0].json()["content"][0]["text"] == "slow answer"
    finally:
        gateway.stop()


def test_sighup_reloads(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "one")
    gateway = _serve(folder, [a], tmp_path, "--no-reload")
    try:
        _write(folder, "alpha", a, upstream, "five")
        time.sleep(0.5)
        assert _text(a) == "from one"  # not watched
        gateway.process.send_signal(signal.SIGHUP)
        assert _until(lambda: _text(a) == "from five")
    finally:
        gateway.stop()


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    except httpx.ConnectError:
        return False
    return True


def _post(port: int, model: str, stream: bool, out: list[httpx.Response | str]) -> None:
    body = {**BODY, "model": model, "stream": stream}
    try:
        out.append(httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=body, timeout=20))
    except httpx.HTTPError as exc:
        out.append(f"{type(exc).__name__}: {exc}")


def test_sigterm_lets_requests_finish_then_ends_the_rest_cleanly(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    (folder / "alpha.yaml").write_text(
        PROVIDER.format(port=a, upstream=upstream.url, target="x").replace(
            "  - match: .\n    target: x\n",
            "  - match: ^(slow|hang|long-stream)$\n    target: \\1\n  - match: .\n    target: x\n",
        )
    )
    gateway = _serve(folder, [a], tmp_path, "--shutdown-timeout", "2")
    results: dict[str, list[httpx.Response | str]] = {k: [] for k in ("s", "h", "ls", "ok")}
    threads = [
        threading.Thread(target=_post, args=(a, "claude-x", True, results["ok"])),
        threading.Thread(target=_post, args=(a, "slow", False, results["s"])),
        threading.Thread(target=_post, args=(a, "hang", False, results["h"])),
        threading.Thread(target=_post, args=(a, "long-stream", True, results["ls"])),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    started = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    try:
        code = gateway.process.wait(10)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        raise
    took = time.monotonic() - started
    for thread in threads:
        thread.join(10)
    log = gateway.stop()
    assert code == 0, log
    assert took < 5
    # Finished within the deadline: a complete answer.
    (slow,) = results["s"]
    assert isinstance(slow, httpx.Response)
    assert slow.json()["content"][0]["text"] == "slow answer"
    (ok,) = results["ok"]
    assert isinstance(ok, httpx.Response)
    assert [e for e, _ in parse_sse(ok.content)][-1] == "message_stop"
    # Still running at the deadline: a clean Anthropic error.
    (hang,) = results["h"]
    assert isinstance(hang, httpx.Response)
    assert hang.status_code == 503
    assert hang.json()["error"]["type"] == "overloaded_error"
    (long,) = results["ls"]
    assert isinstance(long, httpx.Response)
    events = parse_sse(long.content)
    assert events[-1][0] == "error"
    assert "message_stop" not in [e for e, _ in events]
    assert "Traceback" not in log


def _stream_text(port: int, model: str, out: list[bytes]) -> None:
    body = {**BODY, "model": model, "stream": True}
    out.append(httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=body, timeout=20).content)


def test_a_reload_never_cuts_a_stream_in_flight(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "three-seconds")
    gateway = _serve(folder, [a], tmp_path, "--shutdown-timeout", "1")
    try:
        out: list[bytes] = []
        streaming = threading.Thread(target=_stream_text, args=(a, "claude-x", out))
        streaming.start()
        time.sleep(0.3)
        _write(folder, "alpha", a, upstream, "six")
        assert _until(lambda: _text(a) == "from six")
        streaming.join(15)
        events = [e for e, _ in parse_sse(out[0])]
        assert events[-1] == "message_stop"  # lasted longer than the grace, finished whole
        assert "error" not in events
    finally:
        gateway.stop()


def test_a_port_change_to_a_taken_port_keeps_the_old_one(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "one")
    gateway = _serve(folder, [a], tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        try:
            _write(folder, "alpha", taken.getsockname()[1], upstream, "two")
            assert _until(lambda: "keeps serving" in gateway.log())
            assert _text(a) == "from one"
        finally:
            gateway.stop()


def test_a_reload_keeps_counting_requests_in_flight(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    limit = "limits: {concurrent_requests: 1}\n"
    (folder / "alpha.yaml").write_text(
        PROVIDER.format(port=a, upstream=upstream.url, target="hang") + limit
    )
    gateway = _serve(folder, [a], tmp_path)
    try:
        held: list[httpx.Response | str] = []
        threading.Thread(target=_post, args=(a, "claude-x", False, held), daemon=True).start()
        time.sleep(0.5)
        (folder / "alpha.yaml").write_text(
            PROVIDER.format(port=a, upstream=upstream.url, target="hang") + limit + "# v2\n"
        )
        assert _until(lambda: "reloaded" in gateway.log())
        answer = httpx.post(f"http://127.0.0.1:{a}/v1/messages", json=BODY, timeout=5)
        assert answer.status_code == 529  # the hanging request still holds the one place
    finally:
        gateway.stop()


def test_sighup_while_stopping_does_not_kill(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "three-seconds")
    gateway = _serve(folder, [a], tmp_path, "--shutdown-timeout", "5")
    out: list[bytes] = []
    streaming = threading.Thread(target=_stream_text, args=(a, "claude-x", out))
    streaming.start()
    time.sleep(0.3)
    gateway.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    gateway.process.send_signal(signal.SIGHUP)
    code = gateway.process.wait(10)
    streaming.join(10)
    gateway.stop()
    assert code == 0
    assert [e for e, _ in parse_sse(out[0])][-1] == "message_stop"


def test_an_upstream_4xx_echoing_the_prompt_is_not_logged(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    folder = tmp_path / "providers.d"
    folder.mkdir()
    (a,) = free_ports(1)
    _write(folder, "alpha", a, upstream, "echo")
    gateway = _serve(folder, [a], tmp_path)
    try:
        body = {**BODY, "messages": [{"role": "user", "content": "PROMPT-TEXT-1234"}]}
        answer = httpx.post(f"http://127.0.0.1:{a}/v1/messages", json=body, timeout=5)
        assert answer.status_code == 400
        assert "PROMPT-TEXT-1234" in answer.text  # the client sees its upstream's message
    finally:
        log = gateway.stop()
    assert "answered 400" in log
    assert "PROMPT-TEXT-1234" not in log
