"""The runtime provider: a provider file compiled, everything the engine reads per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest
from .mapping import Rule
from .regex import Regex
from .spec import CatalogSpec, ProviderSpec
from .urls import HeaderTemplate, UnsafeUrlValue, UrlTemplate
from .wire import Wire

__all__ = ["CatalogPaths", "Provider", "merge_headers"]


def merge_headers(*layers: Mapping[str, str | None]) -> dict[str, str]:
    """Header layers merged case-insensitively, later ones winning; None removes a header.

    Names come out in lower case, so no header is ever sent twice under two spellings.
    """
    merged: dict[str, str | None] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = value
    return {name: value for name, value in merged.items() if value is not None}


@dataclass(frozen=True)
class CatalogPaths:
    """Compiled catalog JSONPaths."""

    spec: CatalogSpec
    url: str | None  # None: the fallback list only, never fetched
    items: Any
    id: Any
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Provider:
    """Everything the engine needs for one provider, compiled."""

    name: str
    file: str
    spec: ProviderSpec
    base_url: str
    messages_url: str  # the non-streaming URL as written (rendered per request if a template)
    urls: UrlTemplate  # non-streaming requests
    stream_urls: UrlTemplate  # streaming requests
    rules: tuple[Rule, ...]
    wire: Wire
    catalog: CatalogPaths | None
    strip_keys: frozenset[str]
    completion_tokens_models: Regex | None
    output_limits: tuple[tuple[Regex, int], ...]
    upstream_headers: Mapping[str, str | None]  # the file's headers and auth; None removes
    header_templates: Mapping[str, HeaderTemplate]  # headers rendered per request
    missing_credentials: tuple[str, ...]
    secrets: tuple[str, ...]
    template_options: dict[str, Any]  # `options`, as templates see them
    version: str = ""  # of the file and the files it names: a reload swaps what changed
    loaded_at: float = 0.0

    def url_for(self, model: str, stream: bool) -> str:
        """The URL of a message request for `model`; a 400 if the model cannot be in a URL."""
        try:
            return (self.stream_urls if stream else self.urls).url(model, stream)
        except UnsafeUrlValue as exc:
            raise InvalidRequest(f"model {model!r}: {exc}; choose another model") from None

    def max_tokens_field(self, model: str) -> str:
        pattern = self.completion_tokens_models
        if pattern is not None and pattern.search(model):
            return "max_completion_tokens"
        return self.spec.options.max_tokens_field

    def output_limit(self, model: str, catalog_limit: int | None) -> int | None:
        """The output token limit of `model`: the catalog's, else the options'."""
        if catalog_limit:
            return catalog_limit
        for pattern, limit in self.output_limits:
            if pattern.search(model):
                return limit
        return self.spec.options.max_output_tokens
