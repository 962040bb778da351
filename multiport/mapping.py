"""Ordered regex model mappings: the first rule that matches the client's model wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .regex import Match, Regex, Template

__all__ = ["Resolution", "Rule", "resolve"]


@dataclass(frozen=True)
class Rule:
    """One compiled mapping rule."""

    index: int
    pattern: Regex
    templates: tuple[Template, ...]  # the targets, each parsed for the groups it inserts

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets as the file writes them."""
        return tuple(t.text for t in self.templates)

    def candidates(self, match: Match) -> list[str]:
        return [t.expand(match) for t in self.templates]


@dataclass(frozen=True)
class Resolution:
    """How a client model name was resolved."""

    requested: str
    target: str | None
    rule: Rule | None = None
    candidates: tuple[str, ...] = ()
    available: tuple[str, ...] = ()
    reason: str = ""


def resolve(
    model: str,
    rules: Sequence[Rule],
    is_available: Callable[[str], bool] | None = None,
    is_listed: Callable[[str], bool] | None = None,
) -> Resolution:
    """Pick the target for `model`: first matching rule, first available candidate.

    `is_available` rules candidates out (None: every candidate is available); a model no
    rule matches is served as itself when `is_listed` (default: `is_available`) has it.
    """
    listed = is_listed or is_available
    for rule in rules:
        match = rule.pattern.search(model)
        if match is None:
            continue
        candidates = rule.candidates(match)
        if is_available is None:
            return Resolution(model, candidates[0], rule, tuple(candidates), (), "first candidate")
        available = tuple(c for c in candidates if is_available(c))
        if available:
            return Resolution(
                model, available[0], rule, tuple(candidates), available, "first available candidate"
            )
        return Resolution(
            model,
            candidates[0],
            rule,
            tuple(candidates),
            (),
            "no candidate is in the catalog; using the first",
        )
    if listed is not None and listed(model):
        return Resolution(
            model, model, None, (), (model,), "no rule matched; the catalog has this model"
        )
    return Resolution(model, None, None, (), (), "no rule matched")
