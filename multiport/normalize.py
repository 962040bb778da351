"""Anthropic request → the neutral request that every request template reads.

Everything here is generic and driven by the provider's options: system prompts hoisted,
tool results placed right after their calls (`pairing.py`), orphans turned into text,
tool names shortened, schemas stripped, `max_tokens` clamped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .anthropic_wire import (
    ContentBlock,
    DocumentBlock,
    ImageBlock,
    Message,
    MessagesRequest,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolChoiceParam,
    ToolResultBlock,
    ToolUseBlock,
)
from .contracts import (
    NeutralMessage,
    NeutralRequest,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from .errors import InvalidRequest
from .neutral_parts import (
    document_text,
    image_part,
    result_parts,
    search_result_text,
    server_tool_error,
    strip_schema,
)
from .pairing import CallLedger
from .spec import OptionsSpec
from .toolids import ToolNames

__all__ = ["Neutral", "build_neutral"]

_encode = msgspec.json.Encoder().encode
Effort = Literal["low", "medium", "high"]
_EFFORTS: dict[str | None, Effort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "high",
    "minimal": "low",
}


@dataclass(frozen=True)
class Neutral:
    """The neutral request, and what translating the answer back needs."""

    request: NeutralRequest
    tool_names: ToolNames
    dropped_tools: tuple[str, ...] = ()


def build_neutral(
    request: MessagesRequest,
    *,
    target: str,
    options: OptionsSpec,
    strip_keys: frozenset[str],
    max_tokens_field: str,
    output_limit: int | None,
    stream: bool = False,
) -> Neutral:
    """Translate a decoded request into the neutral form."""
    names = ToolNames(options.tool_name_max)
    system = _texts(request.system) if request.system is not None else []
    conversation: list[Message] = []
    for message in request.messages:
        if message.role == "system":
            system.extend(_texts(message.content))
        else:
            conversation.append(message)
    try:
        tools, dropped = _tools(request, names, strip_keys, options)
    except RecursionError as exc:
        raise InvalidRequest("invalid request: a tool's input_schema is nested too deeply") from exc
    max_tokens = request.max_tokens
    if output_limit is not None:
        max_tokens = min(max_tokens, output_limit)
    neutral = NeutralRequest(
        model=target,
        system="\n\n".join(system) if system else None,
        system_parts=system,
        messages=_Conversation(names, options).translate(conversation),
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice, dropped, names, bool(tools)),
        parallel_tool_calls=(
            False
            if tools and request.tool_choice and request.tool_choice.disable_parallel_tool_use
            else None
        ),
        max_tokens=max_tokens,
        max_tokens_field=max_tokens_field,
        stop_sequences=request.stop_sequences or None,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        stream=stream,
        user=request.metadata.user_id if request.metadata else None,
        reasoning_effort=_effort(request) if options.reasoning_effort else None,
    )
    return Neutral(neutral, names, tuple(dropped))


def _texts(content: str | list[TextBlock] | list[ContentBlock]) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [b.text for b in content if isinstance(b, TextBlock) and b.text]


def _tools(
    request: MessagesRequest, names: ToolNames, strip_keys: frozenset[str], options: OptionsSpec
) -> tuple[list[Tool], list[str]]:
    out: list[Tool] = []
    dropped: list[str] = []
    for i, tool in enumerate(request.tools or ()):
        if tool.input_schema is None or tool.type not in (None, "custom"):
            # Server tools (web_search_*, code_execution_*, MCP toolsets) run on Anthropic's side.
            name = tool.name or tool.type or "unnamed"
            if options.server_tools == "reject":
                raise server_tool_error(name, tool.type, i)
            dropped.append(name)
            continue
        if not tool.name:
            raise InvalidRequest(f"invalid request: tool needs a name - at `$.tools[{i}].name`")
        schema = tool.input_schema
        out.append(
            Tool(
                name=names.upstream(tool.name),
                description=tool.description or "",
                parameters=strip_schema(schema, strip_keys) if strip_keys else schema,
            )
        )
    return out, dropped


def _tool_choice(
    choice: ToolChoiceParam | None, dropped: list[str], names: ToolNames, have_tools: bool
) -> ToolChoice | None:
    if choice is None or not have_tools:
        return None
    if choice.type == "tool":
        if choice.name is None or choice.name in dropped:
            return None
        return ToolChoice(type="tool", name=names.upstream(choice.name))
    return ToolChoice(type=choice.type)


def _effort(request: MessagesRequest) -> Effort | None:
    effort = request.output_config.effort if request.output_config else None
    if effort in _EFFORTS:
        return _EFFORTS[effort]
    thinking = request.thinking
    if thinking is not None and thinking.type == "enabled":
        budget = thinking.budget_tokens or 0
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return None


class _Conversation:
    """User and assistant turns → neutral messages, every call paired with its result."""

    def __init__(self, names: ToolNames, options: OptionsSpec) -> None:
        self.names = names
        self.options = options
        self.ledger = CallLedger()
        self.out: list[NeutralMessage] = []

    def translate(self, conversation: list[Message]) -> list[NeutralMessage]:
        for index, message in enumerate(conversation):
            if message.role == "assistant" and self.ledger.waiting:
                # Two assistant turns in a row: the calls of the first got no answer.
                self.out.append(NeutralMessage(role="user", tool_results=self.ledger.unanswered()))
            blocks: list[ContentBlock] = (
                [TextBlock(text=message.content)]
                if isinstance(message.content, str)
                else message.content
            )
            if message.role == "assistant":
                self._assistant(blocks, f"$.messages[{index}]")
            else:
                self._user(blocks, f"$.messages[{index}]")
        if self.ledger.waiting:
            self.out.append(NeutralMessage(role="user", tool_results=self.ledger.unanswered()))
        return self.out

    def _parts(self, block: ContentBlock, where: str) -> list[Part]:
        if isinstance(block, TextBlock):
            if not block.text:
                return []
            keep = self.options.cache_control and block.cache_control is not None
            return [_text_part(block.text, block.cache_control if keep else None)]
        if isinstance(block, ImageBlock):
            return [image_part(block, where)]
        if isinstance(block, DocumentBlock):
            return [_text_part(document_text(block, self.options.documents, where))]
        if isinstance(block, SearchResultBlock):
            return [_text_part(search_result_text(block))]
        return []

    def _assistant(self, blocks: list[ContentBlock], where: str) -> None:
        parts: list[Part] = []
        calls: list[ToolCall] = []
        thinking: list[str] = []
        for j, block in enumerate(blocks):
            if isinstance(block, ToolUseBlock):
                name = self.names.upstream(block.name)
                calls.append(
                    ToolCall(
                        id=self.ledger.call(block.id, name),
                        name=name,
                        input=block.input,
                        arguments=_encode(block.input).decode(),
                    )
                )
            elif isinstance(block, ThinkingBlock):
                if block.thinking:
                    thinking.append(block.thinking)
            else:
                parts.extend(self._parts(block, f"{where}.content[{j}]"))
        # Thinking goes back only where the upstream needs it (DeepSeek's tool loops).
        reasoning = (
            "\n\n".join(thinking) if thinking and self.options.thinking_history == "send" else None
        )
        self._append("assistant", parts, calls, [], reasoning)

    def _user(self, blocks: list[ContentBlock], where: str) -> None:
        parts: list[Part] = []
        results: list[ToolResult] = []
        for j, block in enumerate(blocks):
            at = f"{where}.content[{j}]"
            if isinstance(block, ToolResultBlock):
                answered = self.ledger.answer(block.tool_use_id)
                text, images = result_parts(block, self.options.documents, at)
                if answered is not None:
                    results.append(
                        ToolResult(
                            tool_use_id=answered[0],
                            name=answered[1],
                            content=text,
                            is_error=bool(block.is_error),
                            images=images,
                        )
                    )
                else:
                    # An orphan result answers no call: keep what it says, as user content.
                    parts.append(_text_part(f"[tool result {block.tool_use_id}]\n{text}"))
                    parts.extend(images)
            else:
                parts.extend(self._parts(block, at))
        results.extend(self.ledger.unanswered())
        self._append("user", parts, [], results, None)

    def _append(
        self,
        role: str,
        parts: list[Part],
        calls: list[ToolCall],
        results: list[ToolResult],
        reasoning: str | None,
    ) -> None:
        if not (parts or calls or results):
            return
        tool_images: list[Part] = []
        for result in results:
            if result.images:
                caption = f"Images returned by tool call {result.tool_use_id}:"
                tool_images += [_text_part(caption), *result.images]
        texts = [p.text for p in parts if isinstance(p, TextPart) and p.cache_control is None]
        plain = len(texts) == len(parts)
        self.out.append(
            NeutralMessage(
                role="user" if role == "user" else "assistant",
                parts=parts,
                text="\n\n".join(texts) if plain and parts else None,
                tool_calls=calls,
                tool_results=results,
                tool_images=tool_images,
                reasoning=reasoning,
            )
        )


def _text_part(text: str, cache_control: dict[str, Any] | None = None) -> Part:
    return TextPart(text=text, cache_control=cache_control)
