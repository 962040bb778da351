"""Tool calls paired with their results, turn by turn.

Strict upstreams refuse a conversation in which a call is not answered by the very next
user turn, or in which a result answers no call. The ledger keeps the calls of the last
assistant turn that still wait, so the normalizer can place each result right after its
call, turn an orphan result into text, and answer every call that got no result.
"""

from __future__ import annotations

from .contracts import ToolResult
from .toolids import ToolIds

__all__ = ["NO_RESULT", "CallLedger"]

NO_RESULT = "Error: no result was returned for this call"


class CallLedger:
    """The calls of the last assistant turn, until the next user turn answers them."""

    def __init__(self) -> None:
        self._ids = ToolIds()
        self._by_raw: dict[str, list[str]] = {}  # raw id → safe ids, oldest first
        self._waiting: dict[str, str] = {}  # safe id → tool name, in call order

    def call(self, raw_id: str, name: str) -> str:
        """Record a call of the current assistant turn; the safe id to send upstream."""
        safe = self._ids.claim(raw_id)
        self._by_raw.setdefault(raw_id, []).append(safe)
        self._waiting[safe] = name
        return safe

    def answer(self, raw_id: str) -> tuple[str, str] | None:
        """The safe id and tool name of the waiting call `raw_id` answers; None for an orphan."""
        # Calls that share a raw id are answered in the order they were made.
        for safe in self._by_raw.get(raw_id, ()):
            if safe in self._waiting:
                return safe, self._waiting.pop(safe)
        return None

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def unanswered(self) -> list[ToolResult]:
        """Error results for every call still waiting; the ledger is then empty."""
        results = [
            ToolResult(tool_use_id=safe, name=name, content=NO_RESULT, is_error=True)
            for safe, name in self._waiting.items()
        ]
        self._waiting.clear()
        self._by_raw.clear()
        return results
