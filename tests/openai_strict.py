"""A strict check of an OpenAI chat-completions request: only fields OpenAI defines."""

from __future__ import annotations

from typing import Any

TOP = {
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "user",
    "reasoning_effort",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_format",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
    "verbosity",
}
MESSAGE = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio"},
    "tool": {"role", "content", "tool_call_id"},
}


def check_openai_request(
    body: dict[str, Any],
    *,
    extra_part_keys: frozenset[str] = frozenset(),
    extra_top: frozenset[str] = frozenset(),
) -> None:
    """Raise AssertionError naming the first field OpenAI would refuse."""
    unknown = set(body) - TOP - extra_top
    assert not unknown, f"unknown top-level fields {unknown}"
    assert isinstance(body["model"], str)
    assert body["model"]
    open_calls: set[str] = set()
    for i, message in enumerate(body["messages"]):
        role = message["role"]
        assert role in MESSAGE, f"messages[{i}]: role {role}"
        assert not set(message) - MESSAGE[role], (
            f"messages[{i}]: fields {set(message) - MESSAGE[role]}"
        )
        if role == "tool":
            assert message["tool_call_id"] in open_calls, (
                f"messages[{i}]: tool message answers no call"
            )
            assert isinstance(message["content"], str)
            open_calls.discard(message["tool_call_id"])
            continue
        assert not open_calls, (
            f"messages[{i}]: calls {open_calls} have no tool message right after them"
        )
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                allowed = {"type", "text"} if part["type"] == "text" else {"type", "image_url"}
                assert part["type"] in ("text", "image_url"), part["type"]
                assert not set(part) - allowed - extra_part_keys, (
                    f"messages[{i}] part fields {set(part)}"
                )
        elif role == "assistant":
            assert content is None or isinstance(content, str)
            assert content is not None or message.get("tool_calls") or "content" not in message
        else:
            assert isinstance(content, str)
        for call in message.get("tool_calls") or []:
            assert set(call) == {"id", "type", "function"}
            assert set(call["function"]) == {"name", "arguments"}
            assert isinstance(call["function"]["arguments"], str)
            open_calls.add(call["id"])
    assert not open_calls, f"calls {open_calls} never answered"
    for tool in body.get("tools") or []:
        assert set(tool) == {"type", "function"}
        assert not set(tool["function"]) - {"name", "description", "parameters", "strict"}
        assert len(tool["function"]["name"]) <= 64
    choice = body.get("tool_choice")
    if choice is not None:
        assert choice in ("auto", "none", "required") or choice.get("type") == "function"
