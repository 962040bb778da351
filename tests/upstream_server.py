"""A scripted upstream on 127.0.0.1 for end-to-end tests: OpenAI- or Ollama-style.

Each test queues replies; the server answers requests in order and records what it got.
It runs in a thread with its own event loop, so tests stay plain functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .openai_strict import check_openai_request


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    json: Any = None
    sse: list[Any] | None = None  # chunks (dicts are JSON-encoded; str sent as-is)
    ndjson: list[Any] | None = None
    raw: list[bytes] | None = None  # exact bytes, one write each
    delay: float = 0.0
    hang: bool = False
    gap: float = 0.0  # seconds between stream writes
    gzip: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    forever: bytes | None = None  # after `raw`, sent again and again (`gap` apart) until closed


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # every line, as sent
    query: str = ""


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ephemeral ports on 127.0.0.1, all held at once while chosen."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


class ScriptedUpstream:
    """Start with `start()`; queue replies with `reply()`; read `seen`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.catalog: Any = {"object": "list", "data": [{"id": "gpt-4.1"}, {"id": "gpt-4.1-mini"}]}
        self.catalog_hang = False
        self.strict = True
        self.refused: list[str] = []
        self.client_gone = 0
        self.responder: Callable[[Seen], Reply] | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.seen.clear()

    def start(self) -> ScriptedUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """Close the server, its connections and its event loop."""
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        assert not self._thread.is_alive(), "scripted upstream thread did not stop"
        assert self._loop.is_closed(), "scripted upstream event loop was not closed"

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        raw_headers = [(k.decode(), v.decode()) for k, v in request.raw_headers]
        seen = Seen(request.method, request.path, dict(request.headers), body, raw_headers)
        seen.query = request.query_string
        self.seen.append(seen)
        refusal = self._refuse(request.path, body)
        if refusal is not None:
            return refusal
        if request.method == "GET" and request.path.endswith(("/models", "/api/tags")):
            if self.catalog_hang:
                await asyncio.sleep(3600)
            return web.json_response(self.catalog, headers={"etag": '"v1"'})
        if self.responder is not None:
            reply = self.responder(self.seen[-1])
        elif not self.replies:
            return web.json_response({"error": {"message": "no scripted reply"}}, status=599)
        else:
            reply = self.replies.popleft()
        if reply.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(reply.delay)
        return await self._answer(request, reply)

    def _refuse(self, path: str, body: Any) -> web.Response | None:
        """A strict upstream refuses any field the OpenAI API does not define."""
        if not (self.strict and path.endswith("/chat/completions")):
            return None
        try:
            check_openai_request(body)
        except AssertionError as exc:
            self.refused.append(str(exc))
            return web.json_response({"error": {"message": f"strict upstream: {exc}"}}, status=400)
        return None

    async def _answer(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.forever is not None:
            return await self._endless(request, reply, reply.forever)
        if reply.json is not None or not (reply.sse or reply.ndjson or reply.raw):
            plain = web.json_response(reply.json, status=reply.status, headers=reply.headers)
            if reply.gzip:
                plain.enable_compression(web.ContentCoding.gzip)
            return plain
        content_type = "application/x-ndjson" if reply.ndjson else "text/event-stream"
        response = web.StreamResponse(
            status=reply.status, headers={"content-type": content_type, **reply.headers}
        )
        if reply.gzip:
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        try:
            await self._write(response, reply)
        except (ConnectionResetError, ConnectionError):
            self.client_gone += 1  # the gateway hung up: the client left
            return response
        await response.write_eof()
        return response

    async def _endless(
        self, request: web.Request, reply: Reply, piece: bytes
    ) -> web.StreamResponse:
        """`reply.raw` (exact bytes, say a gzip stream's start), then `piece` again and again
        until the gateway hangs up: an answer that never ends."""
        headers = {"content-type": "text/event-stream", **reply.headers}
        response = web.StreamResponse(status=reply.status, headers=headers)
        await response.prepare(request)
        try:
            for start in reply.raw or []:
                await response.write(start)
            while True:
                await response.write(piece)
                await asyncio.sleep(reply.gap)
        except (ConnectionResetError, ConnectionError):
            self.client_gone += 1
        return response

    async def _write(self, response: web.StreamResponse, reply: Reply) -> None:
        if reply.raw is not None:
            for piece in reply.raw:
                await response.write(piece)
                await asyncio.sleep(reply.gap or 0.001)
        elif reply.sse is not None:
            for chunk in reply.sse:
                data = chunk if isinstance(chunk, str) else json.dumps(chunk)
                await response.write(f"data: {data}\n\n".encode())
                if reply.gap:
                    await asyncio.sleep(reply.gap)
        else:
            for chunk in reply.ndjson or []:
                await response.write((json.dumps(chunk) + "\n").encode())


def chat_completion(
    content: str | None = "Hello!",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str = "stop",
    usage: tuple[int, int] = (12, 5),
) -> dict[str, Any]:
    """An OpenAI chat completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def text_chunks(
    *pieces: str, finish: str = "stop", usage: tuple[int, int] | None = (12, 5)
) -> list[Any]:
    """OpenAI stream chunks for a text answer, ending with usage and [DONE]."""
    chunks: list[Any] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        chunks.append(
            {"choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}
        )
    chunks.append("[DONE]")
    return chunks


def tool_chunks(
    name: str,
    arguments: str,
    *,
    call_id: str = "call_1",
    pieces: int = 3,
    text: str | None = None,
    finish: str = "tool_calls",
) -> list[Any]:
    """OpenAI stream chunks for one tool call, arguments split in `pieces`."""
    chunks: list[Any] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    if text:
        chunks.append({"choices": [{"index": 0, "delta": {"content": text}}]})
    chunks.append(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    },
                }
            ]
        }
    )
    size = max(1, -(-len(arguments) // pieces))
    for i in range(0, len(arguments), size):
        chunks.append(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"arguments": arguments[i : i + size]}}
                            ]
                        },
                    }
                ]
            }
        )
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9}})
    chunks.append("[DONE]")
    return chunks


def serving(responder: Callable[[Seen], Reply]) -> Iterator[ScriptedUpstream]:
    """A started upstream that answers every request with `responder`, stopped after."""
    server = ScriptedUpstream().start()
    server.responder = responder
    yield server
    server.stop()
