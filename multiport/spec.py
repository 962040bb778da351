"""What one provider file may say: frozen msgspec Structs, strict, documented; no I/O.

The JSON Schema in ``schemas/provider.schema.json`` is generated from these Structs, so the
``description`` of each field is also the hover text an editor shows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .limits_spec import AccessSpec, LimitsSpec, TimeoutsSpec
from .options import OptionsSpec, ToolStreamSpec
from .router_spec import RouterSpec

__all__ = [
    "AuthSpec",
    "CatalogFields",
    "CatalogSpec",
    "LimitsSpec",
    "MappingSpec",
    "OptionsSpec",
    "ProviderSpec",
    "SamplesSpec",
    "TemplateFile",
    "TimeoutsSpec",
    "ToolStreamSpec",
    "WireSpec",
]

Port = Annotated[int, Meta(ge=1, le=65535, description="TCP port, 1-65535.")]
Seconds = Annotated[float, Meta(gt=0, description="A duration in seconds.")]


class TemplateFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A Jinja template kept in a file next to the provider YAML."""

    file: Annotated[str, Meta(description="Path of the template, relative to the YAML file.")]


Template = str | TemplateFile


class AuthSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
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


class CatalogFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
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


class CatalogSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the upstream lists its models, and how to read the list."""

    url: Annotated[
        str | None,
        Meta(
            description="Catalog URL; absolute, or a path relative to `base_url`. Without "
            "one, the catalog is the `fallback` list and nothing is fetched."
        ),
    ] = None
    headers: Annotated[
        dict[str, str],
        Meta(description="Extra headers for the catalog request (auth headers are added)."),
    ] = {}
    items: Annotated[
        str, Meta(description="JSONPath selecting one node per model in the answer.")
    ] = "$.data[*]"
    id: Annotated[str, Meta(description="JSONPath of the model id, relative to an item.")] = "id"
    id_prefix: Annotated[
        str | None,
        Meta(
            description="Removed from the start of each id the catalog gives, e.g. "
            "`models/` for Gemini's `models/gemini-2.5-flash`."
        ),
    ] = None
    fields: Annotated[
        CatalogFields, Meta(description="JSONPaths of metadata, relative to an item.")
    ] = CatalogFields()
    refresh: Annotated[float, Meta(ge=0, description="Seconds between refreshes; 0: never.")] = (
        3600.0
    )
    timeout: Annotated[float, Meta(gt=0, description="Timeout of one catalog fetch.")] = 10.0
    send_auth: Annotated[
        bool | None,
        Meta(
            description="Send the provider's `auth` header with the catalog request. By "
            "default it is sent only when the catalog URL has the same origin (scheme, host, "
            "port) as `base_url`; `true` sends it to another origin too."
        ),
    ] = None
    require_capabilities: Annotated[
        list[str],
        Meta(description="Keep only models whose capabilities include all of these."),
    ] = []
    fallback: Annotated[
        list[str],
        Meta(description="Model ids served when the catalog has never been fetched."),
    ] = []


class MappingSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One model mapping: the first rule whose regex matches the client's model wins."""

    match: Annotated[
        str,
        Meta(
            description="Regex searched in the client's model name, e.g. `haiku`; RE2 syntax, "
            "run in linear time: no lookaround or backreferences."
        ),
    ]
    target: Annotated[
        str | list[str],
        Meta(
            description="Upstream model, or candidates in order of preference; `\\1` or "
            "`\\g<name>` insert capture groups."
        ),
    ]


class SamplesSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the upstream sends, as examples: `validate` renders the templates on them."""

    response: Annotated[
        list[dict[str, Any]],
        Meta(description="Complete answers of the upstream, as it sends them (JSON objects)."),
    ] = []
    stream: Annotated[
        list[dict[str, Any]],
        Meta(description="Stream chunks of the upstream, in order, each parsed (JSON objects)."),
    ] = []


class WireSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The upstream's wire format: a built-in dialect, or templates of your own."""

    dialect: Annotated[
        str | None,
        Meta(
            description="Built-in dialect: `openai-chat`, `anthropic` or `ollama-chat`. "
            "Fields below override the dialect's. Without one, nothing is inherited: give "
            "`path`, `framing` and the three templates."
        ),
    ] = None
    path: Annotated[
        str | None,
        Meta(
            description="Path appended to `base_url` for message requests; may hold "
            "`{{ model }}` and `{{ stream }}`, each value percent-encoded, e.g. "
            "`/v1beta/models/{{ model }}:generateContent`."
        ),
    ] = None
    stream_path: Annotated[
        str | None,
        Meta(
            description="Path for streaming requests when it differs from `path`, e.g. "
            "`/v1beta/models/{{ model }}:streamGenerateContent?alt=sse`."
        ),
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
        Meta(
            description="How the upstream frames its stream: `sse` (`data:` lines) or "
            "`ndjson` (one JSON document a line); required with a stream template of your own."
        ),
    ] = None
    passthrough: Annotated[
        bool | None,
        Meta(
            description="Send the client's Anthropic request and stream through unchanged "
            "but for the model name (the `anthropic` dialect sets this)."
        ),
    ] = None
    samples: Annotated[
        SamplesSpec | None,
        Meta(
            description="Sample upstream answers and stream chunks; `validate` renders the "
            "response and stream templates on each, so a template bug is found before a user "
            "meets it."
        ),
    ] = None


class ProviderSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One provider: where it listens, where it forwards, and how it translates."""

    port: Annotated[Port, Meta(description="Port this provider listens on.")]
    base_url: Annotated[
        str | None,
        Meta(
            description="Upstream base URL, http or https, e.g. "
            "`${OPENAI_BASE_URL:-https://api.openai.com/v1}`; required but in a router."
        ),
    ] = None
    name: Annotated[
        Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]*$")] | None,
        Meta(description="Provider name, lower case; defaults to the file name."),
    ] = None
    host: Annotated[str, Meta(description="Address to listen on.")] = "127.0.0.1"
    env_file: Annotated[
        str | None,
        Meta(
            description="Dotenv file read for `${VAR}` (python-dotenv syntax: quotes, "
            "escapes, `export`, comments), relative to the YAML; the process environment "
            "wins over it."
        ),
    ] = None
    auth: Annotated[AuthSpec, Meta(description="Upstream authentication.")] = AuthSpec()
    headers: Annotated[
        dict[str, str | None],
        Meta(
            description="Headers sent with every upstream request; a name the gateway also "
            "sends (`User-Agent`, `Accept` …) is replaced, whatever its case; `null` leaves "
            "out the gateway's own value (an HTTP client may still add its default). A value "
            "may be a template of `request_id` and `model`, e.g. `mp-{{ request_id }}`."
        ),
    ] = {}
    timeouts: Annotated[
        TimeoutsSpec,
        Meta(description="Upstream timeouts; keys not given come from `_defaults.yaml`."),
    ] = TimeoutsSpec()
    access: Annotated[
        AccessSpec,
        Meta(
            description="Inbound keys clients must send; keys not given come from "
            "`_defaults.yaml`. Without any, a port on a non-loopback `host` is refused "
            "unless `multiport serve --allow-open`."
        ),
    ] = AccessSpec()
    proxy: Annotated[
        str | bool | None,
        Meta(
            description="Outbound proxy for this provider's message and catalog requests: "
            "a URL (`http://proxy.corp:3128`), or `false` to ignore `HTTP_PROXY`, "
            "`HTTPS_PROXY` and `NO_PROXY`; unset: they are honoured."
        ),
    ] = None
    limits: Annotated[
        LimitsSpec,
        Meta(
            description="Bounds on requests, connections, upstream answers and templates; "
            "keys not given come from `_defaults.yaml`, then the built-in defaults."
        ),
    ] = LimitsSpec()
    catalog: Annotated[CatalogSpec | None, Meta(description="The upstream's model list.")] = None
    mappings: Annotated[
        list[MappingSpec],
        Meta(description="Ordered model mappings; the first match wins."),
    ] = []
    wire: Annotated[WireSpec, Meta(description="The upstream's wire format.")] = WireSpec(
        dialect="openai-chat"
    )
    options: Annotated[OptionsSpec, Meta(description="Provider quirks.")] = OptionsSpec()
    router: Annotated[
        RouterSpec | None,
        Meta(
            description="Make this port a router over the other providers: no upstream of "
            "its own, so no `base_url`, `wire`, `catalog` or `mappings`."
        ),
    ] = None
