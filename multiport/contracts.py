"""The typed contracts in the middle of the pipeline: what templates read and render.

- `NeutralRequest`: what a request template reads as `request`, built from the client's
  Anthropic request by `normalize.py` (given to templates as plain data).
- `StreamEvent`: what a stream template renders for one upstream chunk.
- `RenderedAnswer`: what a response template renders for one complete upstream answer.

Rendered output is decoded into these Structs strictly: a key that is not a field is an
error naming the template and the key, never a silently missing value. `docs/templates.md`
is generated from the field descriptions here (`multiport schema --contracts`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "AnswerText",
    "AnswerThinking",
    "AnswerToolUse",
    "ErrorInfo",
    "ImagePart",
    "NeutralMessage",
    "NeutralRequest",
    "Part",
    "RenderedAnswer",
    "StopReason",
    "StreamEvent",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolResult",
    "Usage",
]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]
JsonObject = dict[str, Any]


def _d(text: str) -> Meta:
    return Meta(description=text)


class _Contract(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every contract: frozen and strict."""


# The neutral request


class TextPart(_Contract, frozen=True, kw_only=True, tag_field="type", tag="text"):
    """A text part of a user or assistant turn."""

    text: Annotated[str, _d("The text.")]
    cache_control: Annotated[
        JsonObject | None,
        _d("The client's `cache_control`, kept only with `options.cache_control`."),
    ] = None


class ImagePart(_Contract, frozen=True, kw_only=True, tag_field="type", tag="image"):
    """An image part: a URL, or base64 data with its media type."""

    url: Annotated[str, _d("`https://…`, or a `data:<media_type>;base64,<data>` URL.")]
    media_type: Annotated[str | None, _d("Media type of base64 data, e.g. `image/png`.")] = None
    data: Annotated[str | None, _d("Bare base64 data (None for URL images).")] = None


Part = TextPart | ImagePart


class ToolCall(_Contract, frozen=True, kw_only=True):
    """A tool call the assistant made in an earlier turn."""

    id: Annotated[str, _d("Call id, unique in the request, `^[a-zA-Z0-9_-]+$`.")]
    name: Annotated[str, _d("Tool name as the upstream knows it (long names shortened).")]
    input: Annotated[JsonObject, _d("Arguments as an object.")]
    arguments: Annotated[str, _d("Arguments as a JSON string (OpenAI's `arguments`).")]


class ToolResult(_Contract, frozen=True, kw_only=True):
    """The result of a call, always placed in the user turn right after the call."""

    tool_use_id: Annotated[str, _d("Id of the call it answers.")]
    name: Annotated[str, _d("Name of the tool that was called (as the upstream knows it).")] = ""
    content: Annotated[str, _d("Text of the result; `Error: …` when `is_error`.")]
    is_error: Annotated[bool, _d("The tool failed.")] = False
    images: Annotated[
        list[ImagePart], _d("Images the tool returned (a screenshot, a PNG it read).")
    ] = []


class NeutralMessage(_Contract, frozen=True, kw_only=True):
    """One user or assistant turn; system text is hoisted into `system`."""

    role: Annotated[Literal["user", "assistant"], _d("`user` or `assistant`.")]
    parts: Annotated[list[Part], _d("Text and image parts, in order.")] = []
    text: Annotated[
        str | None,
        _d("All parts joined with blank lines when every part is plain text, else None."),
    ] = None
    tool_calls: Annotated[list[ToolCall], _d("Calls made in this (assistant) turn.")] = []
    tool_results: Annotated[list[ToolResult], _d("Results answered in this (user) turn.")] = []
    tool_images: Annotated[
        list[Part],
        _d(
            "The images of this turn's tool results, each group after a text part naming "
            "its call: for upstreams whose tool messages carry text only."
        ),
    ] = []
    reasoning: Annotated[
        str | None,
        _d("Thinking text of this assistant turn, only with `options.thinking_history: send`."),
    ] = None


class Tool(_Contract, frozen=True, kw_only=True):
    """A tool the model may call."""

    name: Annotated[str, _d("Tool name as the upstream knows it.")]
    description: Annotated[str, _d("What the tool does.")] = ""
    parameters: Annotated[JsonObject, _d("JSON Schema of the arguments (keys stripped).")]


class ToolChoice(_Contract, frozen=True, kw_only=True):
    """How the model must use tools."""

    type: Annotated[Literal["auto", "any", "tool", "none"], _d("Anthropic's choice type.")]
    name: Annotated[str | None, _d("The tool to call, with `type: tool`.")] = None


class NeutralRequest(_Contract, frozen=True, kw_only=True):
    """What a request template reads as `request`."""

    model: Annotated[str, _d("The upstream model (also given as `model`).")]
    system: Annotated[str | None, _d("System text, parts joined with blank lines.")] = None
    system_parts: Annotated[list[str], _d("System text, one entry per part.")] = []
    messages: Annotated[list[NeutralMessage], _d("The conversation, calls and results paired.")]
    tools: Annotated[list[Tool], _d("Client tools (server tools are never here).")] = []
    tool_choice: Annotated[ToolChoice | None, _d("None when unset or when there are no tools.")] = (
        None
    )
    parallel_tool_calls: Annotated[
        bool | None, _d("False when the client disabled parallel tool use, else None.")
    ] = None
    max_tokens: Annotated[int, _d("Output limit, clamped to the model's known limit.")]
    max_tokens_field: Annotated[
        str, _d("Name of the upstream field for it: `max_tokens` or `max_completion_tokens`.")
    ] = "max_tokens"
    stop_sequences: Annotated[list[str] | None, _d("Stop sequences.")] = None
    temperature: Annotated[float | None, _d("Sampling temperature.")] = None
    top_p: Annotated[float | None, _d("Nucleus sampling.")] = None
    top_k: Annotated[int | None, _d("Top-k sampling.")] = None
    stream: Annotated[bool, _d("The upstream call streams.")] = False
    user: Annotated[str | None, _d("`metadata.user_id`.")] = None
    reasoning_effort: Annotated[
        Literal["low", "medium", "high"] | None,
        _d("From `output_config.effort` or `thinking`, with `options.reasoning_effort`."),
    ] = None


# What templates render


class Usage(_Contract, frozen=True, kw_only=True):
    """Token counts as the upstream reports them; a missing or zero count is estimated."""

    input_tokens: Annotated[int | None, _d("Prompt tokens, cached ones excluded.")] = None
    output_tokens: Annotated[int | None, _d("Generated tokens.")] = None
    cache_creation_input_tokens: Annotated[int | None, _d("Tokens written to a cache.")] = None
    cache_read_input_tokens: Annotated[int | None, _d("Prompt tokens read from a cache.")] = None


class ErrorInfo(_Contract, frozen=True, kw_only=True):
    """The upstream reported an error: the answer is never turned into a success."""

    message: Annotated[str, _d("What the upstream said.")]
    type: Annotated[str | None, _d("The upstream's error type or code, if any.")] = None


class ToolCallDelta(_Contract, frozen=True, kw_only=True):
    """A piece of one streamed tool call."""

    index: Annotated[int | None, _d("The upstream's call index; pieces of one call share it.")] = (
        None
    )
    id: Annotated[str | None, _d("Call id, when this piece carries it.")] = None
    name: Annotated[str | None, _d("Tool name, when this piece carries it.")] = None
    arguments: Annotated[
        str | JsonObject | None, _d("Argument text to append (or the whole object).")
    ] = None
    complete: Annotated[
        bool, _d("This piece is a whole call (upstreams that send calls in one piece).")
    ] = False


class StreamEvent(_Contract, frozen=True, kw_only=True):
    """What a stream template renders for one upstream chunk; every key is optional."""

    text: Annotated[str | None, _d("Text to append to the answer.")] = None
    thinking: Annotated[str | None, _d("Reasoning text to append.")] = None
    tool_calls: Annotated[list[ToolCallDelta], _d("Tool-call pieces in this chunk.")] = []
    stop_reason: Annotated[
        StopReason | None, _d("Set once, by the chunk that finishes the answer.")
    ] = None
    usage: Annotated[Usage | None, _d("Token counts, when this chunk carries them.")] = None
    error: Annotated[ErrorInfo | None, _d("The upstream reported an error in the stream.")] = None
    done: Annotated[
        bool, _d("The upstream's stream is over (like `[DONE]`); later chunks are ignored.")
    ] = False


class AnswerText(_Contract, frozen=True, kw_only=True, tag_field="type", tag="text"):
    """A text block of a complete answer."""

    text: Annotated[str, _d("The text.")]


class AnswerThinking(_Contract, frozen=True, kw_only=True, tag_field="type", tag="thinking"):
    """A reasoning block of a complete answer."""

    thinking: Annotated[str, _d("The reasoning text.")]
    signature: Annotated[str, _d("Signature, if the upstream gives one.")] = ""


class AnswerToolUse(_Contract, frozen=True, kw_only=True, tag_field="type", tag="tool_use"):
    """A tool call of a complete answer: `input` (an object) or `arguments` (JSON text)."""

    id: Annotated[str | None, _d("Call id; one is made up when missing.")] = None
    name: Annotated[str, _d("Tool name as the upstream gave it.")]
    input: Annotated[JsonObject | None, _d("Arguments as an object.")] = None
    arguments: Annotated[
        str | JsonObject | None, _d("Arguments as JSON text (OpenAI's `arguments`).")
    ] = None


class RenderedAnswer(_Contract, frozen=True, kw_only=True):
    """What a response template renders for one complete upstream answer."""

    content: Annotated[
        list[AnswerText | AnswerThinking | AnswerToolUse], _d("The answer's blocks, in order.")
    ] = []
    stop_reason: Annotated[StopReason | None, _d("Why the upstream stopped; default end_turn.")] = (
        None
    )
    usage: Annotated[Usage | None, _d("Token counts.")] = None
    error: Annotated[ErrorInfo | None, _d("The upstream answered an error, not a message.")] = None
