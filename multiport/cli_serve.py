"""Commands that serve or query providers: serve, models, route."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the serving commands to the parser."""
