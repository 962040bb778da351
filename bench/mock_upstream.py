"""A fast OpenAI-style upstream for the benchmark: fixed answers, no work per request."""

from __future__ import annotations

import json
import sys

from aiohttp import web

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
    }
).encode()
CHUNKS = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
CHUNKS += [
    {"choices": [{"index": 0, "delta": {"content": w + " "}}]}
    for w in ["one", "two", "three", "four", "five", "six", "seven", "eight"]
]
CHUNKS += [
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 8}},
]
STREAM = (
    b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS) + b"data: [DONE]\n\n"
)


async def chat(request: web.Request) -> web.Response:
    body = await request.read()
    if b'"stream":true' in body or b'"stream": true' in body:
        return web.Response(body=STREAM, content_type="text/event-stream")
    return web.Response(body=COMPLETION, content_type="application/json")


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
