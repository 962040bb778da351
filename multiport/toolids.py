"""Tool ids and tool names as the upstream and the client each need them."""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["ToolIds", "ToolNames"]

_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


class ToolIds:
    """Ids that match `^[a-zA-Z0-9_-]+$` and are unique among those claimed so far.

    A repeated id gets the next free `_<n>` suffix. Each base remembers its last suffix,
    so claiming n ids takes linear time whatever the input (no rescan from `_2`).
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._last_suffix: dict[str, int] = {}

    def claim(self, raw: str | None) -> str:
        base = _TOOL_ID_BAD.sub("_", raw or "") or f"toolu_{secrets.token_hex(8)}"
        candidate = base
        if candidate in self._seen:
            n = self._last_suffix.get(base, 1)
            while candidate in self._seen:
                n += 1
                candidate = f"{base}_{n}"
            self._last_suffix[base] = n
        self._seen.add(candidate)
        return candidate


class ToolNames:
    """Upstream tool names and the client's names they stand for."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._to_upstream: dict[str, str] = {}
        self._to_client: dict[str, str] = {}

    def upstream(self, name: str) -> str:
        """The name to send upstream: `name`, or a shortened form that stays unique."""
        short = self._to_upstream.get(name)
        if short is not None:
            return short
        short = name
        if len(name) > self.max_length:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            short = f"{name[: self.max_length - 9]}_{digest}"
        self._to_upstream[name] = short
        self._to_client[short] = name
        return short

    def client(self, name: str) -> str:
        """The client's name for an upstream tool name."""
        return self._to_client.get(name, name)
