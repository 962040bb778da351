"""`options:` of a provider file: the named quirks the engine and the templates understand."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["OptionsSpec", "ToolStreamSpec"]


class ToolStreamSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How the upstream streams tool calls; the defaults fit OpenAI's own streams."""

    arguments: Annotated[
        Literal["deltas", "snapshots"],
        Meta(
            description="`deltas`: each piece of arguments is appended (OpenAI). "
            "`snapshots`: each piece repeats all arguments so far; only the new suffix is sent."
        ),
    ] = "deltas"
    reused_index: Annotated[
        Literal["new-call-on-new-id", "same-call"],
        Meta(
            description="A piece with a name and a new id on an index that already has a "
            "call: `new-call-on-new-id` starts a new call (servers that give every call "
            "index 0); `same-call` continues the call already there."
        ),
    ] = "new-call-on-new-id"
    arguments_before_name: Annotated[
        Literal["hold", "error"],
        Meta(
            description="Arguments that arrive before the call's name: `hold` them until "
            "the name comes; `error` ends the stream with an error event."
        ),
    ] = "hold"


class OptionsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Named quirks that the engine and the templates understand."""

    max_tokens_field: Annotated[
        Literal["max_tokens", "max_completion_tokens"],
        Meta(description="Upstream field that carries the output token limit."),
    ] = "max_tokens"
    max_completion_tokens_models: Annotated[
        str | None,
        Meta(
            description="Regex (RE2 syntax) of models that demand `max_completion_tokens` instead."
        ),
    ] = None
    max_output_tokens: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(description="Clamp `max_tokens` to this when nothing more specific is known."),
    ] = None
    output_limits: Annotated[
        dict[str, Annotated[int, Meta(ge=1)]],
        Meta(
            description="Regex (RE2 syntax) of upstream model → its output token limit, used "
            "when the catalog knows none; the first match wins, e.g. `^gpt-4o: 16384`."
        ),
    ] = {}
    strip_schema_keys: Annotated[
        list[str],
        Meta(description="JSON-schema keywords removed from tool schemas, at any depth."),
    ] = []
    reasoning: Annotated[
        Literal["thinking", "drop"],
        Meta(description="Upstream reasoning deltas become a `thinking` block, or are dropped."),
    ] = "thinking"
    reasoning_effort: Annotated[
        bool,
        Meta(description="Map `output_config.effort` / `thinking` to `reasoning_effort`."),
    ] = False
    stream_options: Annotated[
        bool,
        Meta(
            description="Send `stream_options: {include_usage: true}` when streaming "
            "(read by the `openai-chat` request template)."
        ),
    ] = True
    can_stream: Annotated[
        bool,
        Meta(description="False: call without streaming and replay the answer as a stream."),
    ] = True
    empty_assistant_content: Annotated[
        Literal["null", "empty", "omit"],
        Meta(description="How to write the content of an assistant turn with only tool calls."),
    ] = "null"
    join_text: Annotated[
        bool, Meta(description="Send all-text user content as one string, not a list of parts.")
    ] = True
    cache_control: Annotated[
        bool, Meta(description="Keep `cache_control` on content parts (OpenRouter caching).")
    ] = False
    documents: Annotated[
        Literal["flatten", "refuse"],
        Meta(description="`document` blocks: text sources flattened to text, or a 400."),
    ] = "flatten"
    send_user: Annotated[bool, Meta(description="Send `metadata.user_id` as `user`.")] = False
    send_top_k: Annotated[bool, Meta(description="Send `top_k` (not an OpenAI field).")] = False
    tool_name_max: Annotated[
        int, Meta(ge=8, description="Longest tool name the upstream accepts; longer is cut.")
    ] = 64
    forward_headers: Annotated[
        list[str], Meta(description="Client request headers forwarded to the upstream as is.")
    ] = []
    server_tools: Annotated[
        Literal["reject", "drop"],
        Meta(
            description="Server tools (`web_search_…`, `code_execution_…`) that only "
            "Anthropic runs: `reject` answers 400 naming the tool; `drop` leaves them out "
            "and says so in the `multiport-dropped-tools` response header."
        ),
    ] = "reject"
    thinking_history: Annotated[
        Literal["drop", "send"],
        Meta(
            description="Thinking blocks of earlier assistant turns: `drop` them, or `send` "
            "their text as the turn's `reasoning` (`reasoning_content` in openai-chat; "
            "DeepSeek and Kimi thinking-mode tool loops need it)."
        ),
    ] = "drop"
    count_tokens: Annotated[
        Literal["estimate", "upstream"],
        Meta(
            description="`/v1/messages/count_tokens`: a local `estimate`, or the `upstream`'s "
            "own count (Anthropic-dialect upstreams that serve that endpoint)."
        ),
    ] = "estimate"
    tool_stream: Annotated[
        ToolStreamSpec, Meta(description="How the upstream streams tool calls.")
    ] = ToolStreamSpec()
    ping_interval: Annotated[
        float, Meta(gt=0, description="Seconds of upstream silence before a `ping` event.")
    ] = 12.0
