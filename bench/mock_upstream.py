"""A fast OpenAI-style upstream for the benchmark: fixed answers, no work per request.

    python bench/mock_upstream.py PORT [CATALOG_SIZE]

POST anywhere answers a chat completion (streamed when the body asks for it); GET anywhere
answers a model catalog of CATALOG_SIZE models (default 50), in every shape the shipped
providers read: OpenAI's and Anthropic's `data`, Gemini's and Ollama's `models`, and a bare
list under `.../catalog/models` (GitHub Models).
"""

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


def catalog(size: int) -> tuple[bytes, bytes]:
    """The catalog as an object (`data` and `models`) and as a bare list."""
    items = [
        {
            "id": f"bench-model-{i:05d}",
            "name": f"bench-model-{i:05d}",
            "object": "model",
            "owned_by": "bench",
            "created": 1700000000,
            "display_name": f"Bench model {i}",
        }
        for i in range(size)
    ]
    gemini = [
        {**item, "name": f"models/{item['id']}", "supportedGenerationMethods": ["generateContent"]}
        for item in items
    ]
    return json.dumps({"data": items, "models": gemini}).encode(), json.dumps(items).encode()


def main() -> None:
    catalog_object, catalog_list = catalog(int(sys.argv[2]) if len(sys.argv) > 2 else 50)

    async def models(request: web.Request) -> web.Response:
        as_list = request.path.endswith("/catalog/models")
        return web.Response(
            body=catalog_list if as_list else catalog_object, content_type="application/json"
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{path:.*}", chat)
    app.router.add_get("/{path:.*}", models)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
