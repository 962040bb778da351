"""The one place that decides an answer's stop reason and usage, streamed or not."""

from __future__ import annotations

from .contracts import StopReason, Usage

__all__ = ["estimate_output_tokens", "final_stop_reason", "final_usage"]

_CHARS_PER_TOKEN = 3.5  # the same ratio as the input estimate (tokens.py)


def final_stop_reason(reported: StopReason, has_tool_use: bool) -> StopReason:
    """What the client is told: any tool call makes the answer `tool_use`.

    Whatever the upstream's finish reason says (Gemini's and Ollama's OpenAI endpoints say
    `stop` after tool calls, a cut-off says `length`), a client that got a call must run
    it; a `tool_use` finish with no call is an ordinary `end_turn`.
    """
    if has_tool_use:
        return "tool_use"
    if reported == "tool_use":
        return "end_turn"
    return reported


def estimate_output_tokens(generated_chars: int) -> int:
    """Tokens for text the upstream generated but did not count."""
    if generated_chars <= 0:
        return 0
    return max(1, round(generated_chars / _CHARS_PER_TOKEN))


def final_usage(
    reported: Usage | None, input_estimate: int, generated_chars: int
) -> dict[str, int]:
    """Anthropic usage; an input or output count that is missing or zero is estimated."""
    usage = reported or Usage()
    cached = usage.cache_read_input_tokens or 0
    # Zero input beside cached tokens is real (all of the prompt was cached); otherwise
    # zero means the upstream did not count.
    input_tokens = usage.input_tokens if usage.input_tokens or cached else input_estimate
    return {
        "input_tokens": max(0, input_tokens or 0),
        "output_tokens": usage.output_tokens or estimate_output_tokens(generated_chars),
        "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
        "cache_read_input_tokens": cached,
    }
