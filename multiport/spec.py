"""What one provider file may say: frozen msgspec Structs, strict, documented; no I/O.

The JSON Schema in ``schemas/provider.schema.json`` is generated from these Structs, so the
``description`` of each field is also the hover text an editor shows.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "AuthSpec",
    "CatalogFields",
    "CatalogSpec",
    "MappingSpec",
    "OptionsSpec",
    "ProviderSpec",
    "TemplateFile",
    "TimeoutsSpec",
    "ToolStreamSpec",
    "WireSpec",
]

Port = Annotated[int, Meta(ge=1, le=65535, description="TCP port, 1-65535.")]
Seconds = Annotated[float, Meta(gt=0, description="A duration in seconds.")]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every spec: frozen and strict."""


class TemplateFile(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A Jinja template kept in a file next to the provider YAML."""

    file: Annotated[str, Meta(description="Path of the template, relative to the YAML file.")]


Template = str | TemplateFile


class AuthSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How multiport authenticates to the upstream."""

    header: Annotated[
        str, Meta(description="Header that carries the credential, e.g. `Authorization`.")
    ] = "Authorization"
    value: Annotated[
        str | None,
        Meta(
            description="Header value; put the secret in an environment variable: "
            "`Bearer ${OPENAI_API_KEY}`. Never write a secret in the file."
        ),
    ] = None
    passthrough: Annotated[
        bool,
        Meta(
            description="Forward the client's own `x-api-key` or `Authorization` header "
            "to the upstream when it sends one (bring your own key)."
        ),
    ] = False


class TimeoutsSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Upstream timeouts, in seconds."""

    connect: Annotated[float, Meta(gt=0, description="Time to open a connection.")] = 10.0
    read: Annotated[
        float, Meta(gt=0, description="Longest silence between two reads of the answer.")
    ] = 600.0
    write: Annotated[float, Meta(gt=0, description="Time to send the request body.")] = 60.0
    pool: Annotated[float, Meta(gt=0, description="Time to wait for a free connection.")] = 10.0


class CatalogFields(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """JSONPaths evaluated on each catalog item, for model metadata. All optional."""

    display_name: Annotated[str | None, Meta(description="Human-readable name.")] = None
    owned_by: Annotated[str | None, Meta(description="Publisher or owner.")] = None
    context_window: Annotated[str | None, Meta(description="Input token limit.")] = None
    max_output_tokens: Annotated[str | None, Meta(description="Output token limit.")] = None
    capabilities: Annotated[
        str | None, Meta(description="List of capabilities, e.g. `tool-calling`.")
    ] = None
    input_modalities: Annotated[
        str | None, Meta(description="List of input modalities, e.g. `text`, `image`.")
    ] = None
    created: Annotated[str | None, Meta(description="Creation time (epoch or ISO 8601).")] = None


class CatalogSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the upstream lists its models, and how to read the list."""

    url: Annotated[
        str | None,
        Meta(description="Catalog URL; absolute, or a path relative to `base_url`."),
    ] = None
    headers: Annotated[
        dict[str, str],
        Meta(description="Extra headers for the catalog request (auth headers are added)."),
    ] = {}
    items: Annotated[
        str, Meta(description="JSONPath selecting one node per model in the answer.")
    ] = "$.data[*]"
    id: Annotated[str, Meta(description="JSONPath of the model id, relative to an item.")] = "id"
    fields: Annotated[
        CatalogFields, Meta(description="JSONPaths of metadata, relative to an item.")
    ] = CatalogFields()
    refresh: Annotated[float, Meta(ge=0, description="Seconds between refreshes; 0: never.")] = (
        3600.0
    )
    timeout: Annotated[float, Meta(gt=0, description="Timeout of one catalog fetch.")] = 10.0
    require_capabilities: Annotated[
        list[str],
        Meta(description="Keep only models whose capabilities include all of these."),
    ] = []
    fallback: Annotated[
        list[str],
        Meta(description="Model ids served when the catalog has never been fetched."),
    ] = []


class MappingSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One model mapping: the first rule whose regex matches the client's model wins."""

    match: Annotated[
        str,
        Meta(description="Python regex searched in the client's model name, e.g. `haiku`."),
    ]
    target: Annotated[
        str | list[str],
        Meta(
            description="Upstream model, or candidates in order of preference; `\\1` or "
            "`\\g<name>` insert capture groups."
        ),
    ]


class WireSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The upstream's wire format: a built-in dialect, or templates of your own."""

    dialect: Annotated[
        str | None,
        Meta(
            description="Built-in dialect: `openai-chat` or `anthropic`. Fields below "
            "override the dialect's."
        ),
    ] = None
    path: Annotated[
        str | None, Meta(description="Path appended to `base_url` for message requests.")
    ] = None
    request: Annotated[
        Template | None,
        Meta(description="Jinja template rendering the upstream request body as JSON."),
    ] = None
    response: Annotated[
        Template | None,
        Meta(description="Jinja template rendering a non-streaming answer as JSON."),
    ] = None
    stream: Annotated[
        Template | None,
        Meta(description="Jinja template rendering one upstream stream event as JSON."),
    ] = None
    framing: Annotated[
        Literal["sse", "ndjson"] | None,
        Meta(description="How the upstream frames its stream: `sse` or `ndjson`."),
    ] = None
    passthrough: Annotated[
        bool | None,
        Meta(
            description="Send the client's Anthropic request and stream through unchanged "
            "but for the model name (the `anthropic` dialect sets this)."
        ),
    ] = None


class ToolStreamSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
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


class OptionsSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Named quirks that the engine and the templates understand."""

    max_tokens_field: Annotated[
        Literal["max_tokens", "max_completion_tokens"],
        Meta(description="Upstream field that carries the output token limit."),
    ] = "max_tokens"
    max_completion_tokens_models: Annotated[
        str | None,
        Meta(description="Regex of models that demand `max_completion_tokens` instead."),
    ] = None
    max_output_tokens: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(description="Clamp `max_tokens` to this when nothing more specific is known."),
    ] = None
    output_limits: Annotated[
        dict[str, Annotated[int, Meta(ge=1)]],
        Meta(
            description="Regex of upstream model → its output token limit, used when the "
            "catalog knows none; the first match wins, e.g. `^gpt-4o: 16384`."
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
        Meta(description="Send `stream_options: {include_usage: true}` when streaming."),
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
    tool_stream: Annotated[
        ToolStreamSpec, Meta(description="How the upstream streams tool calls.")
    ] = ToolStreamSpec()
    ping_interval: Annotated[
        float, Meta(gt=0, description="Seconds of upstream silence before a `ping` event.")
    ] = 12.0


class ProviderSpec(_Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One provider: where it listens, where it forwards, and how it translates."""

    port: Annotated[Port, Meta(description="Port this provider listens on.")]
    base_url: Annotated[
        str,
        Meta(
            description="Upstream base URL, http or https, e.g. "
            "`${OPENAI_BASE_URL:-https://api.openai.com/v1}`."
        ),
    ]
    name: Annotated[
        Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]*$")] | None,
        Meta(description="Provider name, lower case; defaults to the file name."),
    ] = None
    host: Annotated[str, Meta(description="Address to listen on.")] = "127.0.0.1"
    env_file: Annotated[
        str | None,
        Meta(
            description="Dotenv file (KEY=value lines) read for `${VAR}`, relative to the "
            "YAML; the process environment wins over it."
        ),
    ] = None
    auth: Annotated[AuthSpec, Meta(description="Upstream authentication.")] = AuthSpec()
    headers: Annotated[
        dict[str, str], Meta(description="Extra headers sent with every upstream request.")
    ] = {}
    timeouts: Annotated[TimeoutsSpec, Meta(description="Upstream timeouts.")] = TimeoutsSpec()
    catalog: Annotated[CatalogSpec | None, Meta(description="The upstream's model list.")] = None
    mappings: Annotated[
        list[MappingSpec],
        Meta(description="Ordered model mappings; the first match wins."),
    ] = []
    wire: Annotated[WireSpec, Meta(description="The upstream's wire format.")] = WireSpec(
        dialect="openai-chat"
    )
    options: Annotated[OptionsSpec, Meta(description="Provider quirks.")] = OptionsSpec()
