"""Anthropic request → the neutral request that every request template reads.

Everything here is generic and driven by the provider's options: system prompts hoisted,
tool results placed right after their calls, orphans turned into text, tool names
shortened, schemas stripped, server tools dropped, `max_tokens` clamped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .anthropic_wire import Block, Message, MessagesRequest
from .errors import InvalidRequest
from .spec import OptionsSpec

__all__ = ["Neutral", "ToolNames", "build_neutral", "safe_tool_id"]

log = logging.getLogger("multiport.normalize")
_encode = msgspec.json.Encoder().encode
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high", "minimal": "low"}


def safe_tool_id(raw: str | None, seen: set[str], fallback_seed: int) -> str:
    """An id that matches `^[a-zA-Z0-9_-]+$` and is unique among `seen`."""
    base = _TOOL_ID_BAD.sub("_", raw or "") or f"toolu_{fallback_seed:04d}"
    candidate, n = base, 1
    while candidate in seen:
        n += 1
        candidate = f"{base}_{n}"
    seen.add(candidate)
    return candidate


@dataclass
class ToolNames:
    """Upstream tool names and the client's names they stand for."""

    max_length: int
    to_upstream: dict[str, str] = field(default_factory=dict)
    to_client: dict[str, str] = field(default_factory=dict)

    def upstream(self, name: str) -> str:
        if name in self.to_upstream:
            return self.to_upstream[name]
        short = name
        if len(name) > self.max_length:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            short = f"{name[: self.max_length - 9]}_{digest}"
        self.to_upstream[name] = short
        self.to_client[short] = name
        return short

    def client(self, name: str) -> str:
        return self.to_client.get(name, name)


@dataclass
class Neutral:
    """The neutral request, plain data for templates, and what the answer needs back."""

    data: dict[str, Any]
    tool_names: ToolNames


def build_neutral(
    request: MessagesRequest,
    *,
    target: str,
    options: OptionsSpec,
    strip_keys: frozenset[str],
    max_tokens_field: str,
    output_limit: int | None,
) -> Neutral:
    """Translate a decoded request into the neutral form."""
    names = ToolNames(options.tool_name_max)
    system = _system_texts(request.system)
    conversation: list[Message] = []
    for message in request.messages:
        if message.role == "system":
            system.extend(_texts(message.content))
        else:
            conversation.append(message)
    tools, dropped = _tools(request.tools, names, strip_keys)
    messages = _messages(conversation, names, options)
    max_tokens = request.max_tokens
    if output_limit is not None:
        max_tokens = min(max_tokens, output_limit)
    data: dict[str, Any] = {
        "model": target,
        "system": "\n\n".join(system) if system else None,
        "system_parts": system,
        "messages": messages,
        "tools": tools,
        "tool_choice": _tool_choice(request.tool_choice, dropped, names, bool(tools)),
        "parallel_tool_calls": _parallel(request.tool_choice, bool(tools)),
        "max_tokens": max_tokens,
        "max_tokens_field": max_tokens_field,
        "stop_sequences": request.stop_sequences or None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "stream": request.stream,
        "user": (request.metadata or {}).get("user_id"),
        "reasoning_effort": _effort(request) if options.reasoning_effort else None,
    }
    return Neutral(data, names)


def _texts(content: str | list[Block]) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [b["text"] for b in content if b.get("type") == "text" and b.get("text")]


def _system_texts(system: str | list[Block] | None) -> list[str]:
    if system is None:
        return []
    return _texts(system)


def _strip(schema: Any, keys: frozenset[str], *, names: bool = False) -> Any:
    """Remove schema keywords at any depth; keys of `properties` are names, kept."""
    if isinstance(schema, dict):
        return {
            k: _strip(v, keys, names=(k in ("properties", "$defs", "definitions")) and not names)
            for k, v in schema.items()
            if names or k not in keys
        }
    if isinstance(schema, list):
        return [_strip(v, keys) for v in schema]
    return schema


def _tools(
    tools: list[Block] | None, names: ToolNames, strip_keys: frozenset[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    out: list[dict[str, Any]] = []
    dropped: set[str] = set()
    for i, tool in enumerate(tools or ()):
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"invalid request: tool needs a name - at `$.tools[{i}].name`")
        schema = tool.get("input_schema")
        if schema is None or tool.get("type") not in (None, "custom"):
            # Server tools (web_search_*, code_execution_*) run on Anthropic's side only.
            log.info(
                "dropped server tool %r (type %s): the upstream cannot run it",
                name,
                tool.get("type"),
            )
            dropped.add(name)
            continue
        out.append(
            {
                "name": names.upstream(name),
                "description": tool.get("description") or "",
                "parameters": _strip(schema, strip_keys) if strip_keys else schema,
            }
        )
    return out, dropped


def _tool_choice(
    choice: Block | None, dropped: set[str], names: ToolNames, have_tools: bool
) -> dict[str, Any] | None:
    if choice is None or not have_tools:
        return None
    kind = choice.get("type")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or name in dropped:
            return None
        return {"type": "tool", "name": names.upstream(name)}
    if kind in ("auto", "any", "none"):
        return {"type": kind}
    raise InvalidRequest(
        f"invalid request: tool_choice.type must be auto, any, tool or none, got {kind!r} "
        "- at `$.tool_choice.type`"
    )


def _parallel(choice: Block | None, have_tools: bool) -> bool | None:
    if choice is None or not have_tools:
        return None
    return False if choice.get("disable_parallel_tool_use") else None


def _effort(request: MessagesRequest) -> str | None:
    effort = (request.output_config or {}).get("effort")
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    thinking = request.thinking or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens") or 0
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return None


def _image(block: Block, where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        media, payload = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(payload, str):
            raise InvalidRequest(
                f"invalid request: a base64 image needs media_type and data - at `{where}.source`"
            )
        return {
            "type": "image",
            "url": f"data:{media};base64,{payload}",
            "media_type": media,
            "data": payload,
        }
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image", "url": source["url"], "media_type": None, "data": None}
    raise InvalidRequest(
        f"invalid request: image source type must be base64 or url, got {kind!r} - at `{where}.source`"
    )


def _document(block: Block, options: OptionsSpec, where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    text: str | None = None
    if source.get("type") == "text":
        text = source.get("data")
    elif source.get("type") == "content":
        text = "\n".join(_texts(source.get("content") or []))
    if options.documents == "refuse" or not isinstance(text, str):
        raise InvalidRequest(
            f"invalid request: this provider cannot read {source.get('type')!r} documents; "
            f"send the document as text - at `{where}`"
        )
    title = block.get("title")
    return {"type": "text", "text": f"{title}\n\n{text}" if title else text}


def _result_text(block: Block) -> str:
    content = block.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            b.get("text", "") if b.get("type") == "text" else f"[{b.get('type')} omitted]"
            for b in content
        )
    else:
        text = ""
    return f"Error: {text}" if block.get("is_error") else text


def _messages(
    conversation: list[Message], names: ToolNames, options: OptionsSpec
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    id_map: dict[str, str] = {}
    pending: list[str] = []  # ids of the last assistant turn's calls awaiting results
    for index, message in enumerate(conversation):
        where = f"$.messages[{index}]"
        blocks: list[Block] = (
            [{"type": "text", "text": message.content}]
            if isinstance(message.content, str)
            else message.content
        )
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            kind = block.get("type")
            at = f"{where}.content[{j}]"
            if kind == "text":
                if block.get("text"):
                    part: dict[str, Any] = {"type": "text", "text": block["text"]}
                    if options.cache_control and "cache_control" in block:
                        part["cache_control"] = block["cache_control"]
                    parts.append(part)
            elif kind == "image":
                parts.append(_image(block, at))
            elif kind == "document":
                parts.append(_document(block, options, at))
            elif kind == "tool_use" and message.role == "assistant":
                raw_id = str(block.get("id") or "")
                new_id = safe_tool_id(raw_id, seen_ids, len(seen_ids))
                id_map[raw_id] = new_id
                tool_input = block.get("input") or {}
                calls.append(
                    {
                        "id": new_id,
                        "name": names.upstream(str(block.get("name") or "")),
                        "input": tool_input,
                        "arguments": _encode(tool_input).decode(),
                    }
                )
            elif kind == "tool_result" and message.role == "user":
                raw_id = str(block.get("tool_use_id") or "")
                mapped = id_map.get(raw_id)
                if mapped is not None and mapped in pending:
                    pending.remove(mapped)
                    results.append(
                        {
                            "tool_use_id": mapped,
                            "content": _result_text(block),
                            "is_error": bool(block.get("is_error")),
                        }
                    )
                else:
                    # An orphan result answers no call: keep its text, as user text.
                    parts.append(
                        {"type": "text", "text": f"[tool result {raw_id}]\n{_result_text(block)}"}
                    )
            # thinking, redacted_thinking and server tool blocks have no upstream form.
        if pending and message.role == "user":
            for missing in pending:
                results.append(
                    {
                        "tool_use_id": missing,
                        "content": "Error: no result was returned for this call",
                        "is_error": True,
                    }
                )
        if message.role == "user" or pending:
            pending = []
        if message.role == "assistant":
            pending = [c["id"] for c in calls]
        if not (parts or calls or results):
            continue
        all_text = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        out.append(
            {
                "role": message.role,
                "parts": parts,
                "text": "\n\n".join(p["text"] for p in parts) if all_text and parts else None,
                "tool_calls": calls,
                "tool_results": results,
            }
        )
    return out
