"""A router file compiled: ordered rules that read the request, candidates on other providers."""

from __future__ import annotations

from dataclasses import dataclass

from .anthropic_wire import ImageBlock, MessagesRequest
from .limits_spec import DEFAULT_LIMITS, LimitsSpec
from .loader import LoadedFile
from .regex import Regex, RegexError, compile_regex
from .router_spec import RouterSpec, RouteWhenSpec
from .tokens import estimate_tokens

__all__ = ["Candidate", "Features", "RouteRule", "Router", "compile_router", "features_of"]


@dataclass(frozen=True)
class Candidate:
    """A model on a provider: `provider/model` in the file."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Features:
    """What a request is, as rules read it."""

    model: str
    background: bool
    thinking: bool
    input_tokens: int
    images: bool
    web_search: bool


@dataclass(frozen=True)
class RouteRule:
    """One compiled rule."""

    index: int
    name: str
    when: RouteWhenSpec
    model: Regex | None
    candidates: tuple[Candidate, ...]

    def matches(self, features: Features) -> bool:
        when = self.when
        checks = (
            self.model is None or self.model.search(features.model) is not None,
            when.background is None or when.background == features.background,
            when.thinking is None or when.thinking == features.thinking,
            when.min_input_tokens is None or features.input_tokens >= when.min_input_tokens,
            when.images is None or when.images == features.images,
            when.web_search is None or when.web_search == features.web_search,
        )
        return all(checks)


@dataclass(frozen=True)
class Router:
    """A router port: rules over the other providers."""

    name: str
    file: str
    host: str
    port: int
    spec: RouterSpec
    rules: tuple[RouteRule, ...]
    background: Regex
    limits: LimitsSpec = DEFAULT_LIMITS
    keys: tuple[str, ...] = ()  # access.keys: a client must send one

    def features(self, request: MessagesRequest) -> Features:
        """What `request` is, as this router's rules read it."""
        return features_of(request, self.background)

    def pick(self, features: Features) -> RouteRule | None:
        """The first rule that matches, or None."""
        return next((r for r in self.rules if r.matches(features)), None)


def features_of(request: MessagesRequest, background: Regex) -> Features:
    """The features rules read, from a decoded request."""
    # Claude Code sends `adaptive` with every request: only an explicit budget counts.
    thinking = request.thinking is not None and request.thinking.type == "enabled"
    images = any(
        isinstance(block, ImageBlock)
        for message in request.messages
        if not isinstance(message.content, str)
        for block in message.content
    )
    web_search = any((t.type or "").startswith("web_search") for t in request.tools or ())
    tokens = estimate_tokens(request.system, request.messages, request.tools)
    is_background = background.search(request.model) is not None
    return Features(request.model, is_background, thinking, tokens, images, web_search)


def compile_router(
    loaded: LoadedFile,
    spec: RouterSpec,
    host: str,
    port: int,
    limits: LimitsSpec = DEFAULT_LIMITS,
    keys: tuple[str, ...] = (),
) -> Router | None:
    """Compile the rules; problems go to `loaded` with their path."""
    rules = []
    for i, rule in enumerate(spec.rules):
        where = ("router", "rules", i)
        pattern = None
        if rule.when.model is not None:
            try:
                pattern = compile_regex(rule.when.model)
            except RegexError as exc:
                loaded.problem((*where, "when", "model"), str(exc))
                continue
        candidates = []
        for j, target in enumerate(rule.to):
            provider, _, model = target.partition("/")
            if not provider or not model:
                loaded.problem(
                    (*where, "to", j),
                    f"candidate {target!r} must be `provider/model`, e.g. `openai/gpt-4.1`",
                )
                continue
            candidates.append(Candidate(provider, model))
        if not candidates:
            loaded.problem((*where, "to"), "a rule needs at least one candidate")
            continue
        rules.append(RouteRule(i, rule.name or f"#{i}", rule.when, pattern, tuple(candidates)))
    if any(p.severity == "error" for p in loaded.problems):
        return None
    try:
        background = compile_regex(spec.background_model)
    except RegexError as exc:
        loaded.problem(("router", "background_model"), str(exc))
        return None
    name, file = loaded.name, str(loaded.path)
    return Router(name, file, host, port, spec, tuple(rules), background, limits, keys)
