"""The Anthropic Messages request as multiport reads it, decoded strictly.

Every field multiport reads has a type, and a value of the wrong type is a 400 that names
its `$.path`. Fields multiport does not read are tolerated (clients add new ones often);
content blocks are a tagged union on `type`, so an unknown block type is a 400 too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Union

import msgspec

from .errors import InvalidRequest

__all__ = [
    "ContentBlock",
    "CountTokensRequest",
    "DocumentBlock",
    "ImageBlock",
    "Message",
    "MessagesRequest",
    "PassthroughRequest",
    "SearchResultBlock",
    "TextBlock",
    "ThinkingBlock",
    "ToolChoiceParam",
    "ToolParam",
    "ToolResultBlock",
    "ToolUseBlock",
    "decode_count",
    "decode_messages",
    "decode_passthrough",
]

JsonObject = dict[str, Any]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of the tagged content blocks and sources."""


class Base64Source(_Wire, frozen=True, kw_only=True, tag="base64"):
    media_type: str
    data: str


class UrlSource(_Wire, frozen=True, kw_only=True, tag="url"):
    url: str


class FileSource(_Wire, frozen=True, kw_only=True, tag="file"):
    file_id: str


class TextSource(_Wire, frozen=True, kw_only=True, tag="text"):
    data: str
    media_type: str = "text/plain"


class TextBlock(_Wire, frozen=True, kw_only=True, tag="text"):
    text: str
    cache_control: JsonObject | None = None


class ImageBlock(_Wire, frozen=True, kw_only=True, tag="image"):
    source: Base64Source | UrlSource | FileSource
    cache_control: JsonObject | None = None


class ContentSource(_Wire, frozen=True, kw_only=True, tag="content"):
    content: str | list[TextBlock | ImageBlock]


class DocumentBlock(_Wire, frozen=True, kw_only=True, tag="document"):
    source: Base64Source | UrlSource | FileSource | TextSource | ContentSource
    title: str | None = None
    cache_control: JsonObject | None = None


class ToolUseBlock(_Wire, frozen=True, kw_only=True, tag="tool_use"):
    id: str
    name: str
    input: JsonObject
    cache_control: JsonObject | None = None


class SearchResultBlock(_Wire, frozen=True, kw_only=True, tag="search_result"):
    source: str = ""
    title: str = ""
    content: list[TextBlock] = []


class ThinkingBlock(_Wire, frozen=True, kw_only=True, tag="thinking"):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Wire, frozen=True, kw_only=True, tag="redacted_thinking"):
    data: str


class ServerBlock(_Wire, frozen=True, kw_only=True):
    """A block only Anthropic's own servers produce or read (server tools, MCP)."""


# Block types that belong to Anthropic-run tools: accepted and read by nobody but an
# Anthropic upstream, which receives the request unchanged.
_SERVER_BLOCK_TYPES = (
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
    "tool_reference",
    "compaction",
)
_SERVER_BLOCKS = tuple(
    msgspec.defstruct(
        "".join(part.title() for part in name.split("_")),
        [],
        bases=(ServerBlock,),
        tag=name,
        frozen=True,
        kw_only=True,
    )
    for name in _SERVER_BLOCK_TYPES
)

# What a tool result may hold: any block but a tool call or another result.
_RESULT_ITEMS = (TextBlock, ImageBlock, DocumentBlock, SearchResultBlock, *_SERVER_BLOCKS)
if TYPE_CHECKING:
    ResultItem = TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ServerBlock
else:
    ResultItem = Union[_RESULT_ITEMS]  # noqa: UP007 - built at run time


class ToolResultBlock(_Wire, frozen=True, kw_only=True, tag="tool_result"):
    tool_use_id: str
    content: str | list[ResultItem] | None = None
    is_error: bool | None = None
    cache_control: JsonObject | None = None


_BLOCKS = (
    TextBlock,
    SearchResultBlock,
    ImageBlock,
    DocumentBlock,
    ToolUseBlock,
    ToolResultBlock,
    ThinkingBlock,
    RedactedThinkingBlock,
)
if TYPE_CHECKING:
    ContentBlock = (
        TextBlock
        | SearchResultBlock
        | ImageBlock
        | DocumentBlock
        | ToolUseBlock
        | ToolResultBlock
        | ThinkingBlock
        | RedactedThinkingBlock
        | ServerBlock
    )
else:
    ContentBlock = Union[(*_BLOCKS, *_SERVER_BLOCKS)]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class ToolParam(msgspec.Struct, frozen=True, kw_only=True):
    """A client tool (`input_schema`), or a server tool (`type` such as `web_search_…`)."""

    name: str | None = None
    type: str | None = None
    description: str | None = None
    input_schema: JsonObject | None = None


class ToolChoiceParam(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class OutputConfig(msgspec.Struct, frozen=True, kw_only=True):
    effort: str | None = None


class Metadata(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str | None = None


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str
    max_tokens: int
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None


class CountTokensRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None


class PassthroughRequest(msgspec.Struct, kw_only=True):
    """What an Anthropic upstream's request needs read: it receives the body unchanged."""

    model: str
    stream: bool | None = False


_messages_decoder = msgspec.json.Decoder(MessagesRequest)
_passthrough_decoder = msgspec.json.Decoder(PassthroughRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    if not body.strip():
        raise InvalidRequest("the request body is empty; send a JSON Messages request")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid UTF-8 (byte {exc.start}); send JSON in UTF-8"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest(
            "the request body is nested too deeply; flatten the deepest value"
        ) from exc


def decode_messages(body: bytes) -> MessagesRequest:
    """Decode and check a `POST /v1/messages` body."""
    request: MessagesRequest = _decode(_messages_decoder, body)
    if request.max_tokens < 1:
        raise InvalidRequest("invalid request: max_tokens must be at least 1 - at `$.max_tokens`")
    if not request.messages:
        raise InvalidRequest("invalid request: messages must not be empty - at `$.messages`")
    return request


def decode_passthrough(body: bytes) -> PassthroughRequest:
    """Decode the little an Anthropic upstream's request needs: the model and `stream`."""
    request: PassthroughRequest = _decode(_passthrough_decoder, body)
    return request


def decode_count(body: bytes) -> CountTokensRequest:
    """Decode and check a `POST /v1/messages/count_tokens` body."""
    request: CountTokensRequest = _decode(_count_decoder, body)
    return request
