"""The upstream of the soak test, in a process of its own: `python -m tests.soak_upstream`.

It prints its URL, then answers by the model asked for: `hang` never answers, `flood`
streams one endless SSE event (`data:` lines and never a blank line), `bomb` answers a
gzip bomb, anything else a small chat completion (or stream). It runs until stdin closes.
"""

from __future__ import annotations

import gzip
import sys

from .upstream_server import Reply, ScriptedUpstream, Seen, chat_completion, text_chunks

_LINE = b"data: " + b"x" * 65_536 + b"\n"
_BOMB = gzip.compress(b"0" * (256 << 20), compresslevel=9)  # 256 MiB in about 250 KB


def answer(seen: Seen) -> Reply:
    body = seen.body if isinstance(seen.body, dict) else {}
    model = str(body.get("model", ""))
    stream = bool(body.get("stream"))
    if model == "hang":
        return Reply(hang=True)
    if model == "flood":
        return Reply(raw=[_LINE] * 20_000)  # 1.3 GB, one event
    if model == "bomb":
        return Reply(raw=[_BOMB], headers={"content-encoding": "gzip"})
    if stream:
        return Reply(sse=text_chunks("Hel", "lo", "!"))
    return Reply(json=chat_completion("Hello!"))


def main() -> None:
    server = ScriptedUpstream()
    server.strict = False

    def responder(seen: Seen) -> Reply:
        server.seen.clear()  # a soak sends many thousands of requests
        return answer(seen)

    server.responder = responder
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()  # until the test closes it


if __name__ == "__main__":
    main()
