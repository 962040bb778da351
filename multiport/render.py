"""Anthropic request → the upstream's request body: normalize, then the request template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .anthropic_wire import ImageBlock, MessagesRequest
from .catalog import ModelInfo
from .errors import InvalidRequest
from .normalize import Neutral, build_neutral
from .provider import Provider

__all__ = ["Rendered", "render_request"]

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Rendered:
    """The upstream request body, and the neutral request it came from."""

    neutral: Neutral
    data: dict[str, Any]  # the neutral request as plain data, as templates see it
    body: bytes


def render_request(
    provider: Provider,
    request: MessagesRequest,
    target: str,
    *,
    info: ModelInfo | None = None,
    stream: bool = False,
) -> Rendered:
    """The body to send for `request` to `target`; `info` is what the catalog knows of it."""
    if info and info.input_modalities and "image" not in info.input_modalities:
        _refuse_images(request, target, info)
    limit = provider.output_limit(target, info.max_output_tokens if info else None)
    neutral = build_neutral(
        request,
        target=target,
        options=provider.spec.options,
        strip_keys=provider.strip_keys,
        max_tokens_field=provider.max_tokens_field(target),
        output_limit=limit,
        stream=stream,
    )
    data = msgspec.to_builtins(neutral.request)
    template = provider.wire.request
    assert template is not None
    body = template.render_body(request=data, options=provider.template_options, model=target)
    return Rendered(neutral, data, body)


def _refuse_images(request: MessagesRequest, target: str, info: ModelInfo) -> None:
    has_image = any(
        isinstance(block, ImageBlock)
        for message in request.messages
        if not isinstance(message.content, str)
        for block in message.content
    )
    if has_image:
        raise InvalidRequest(
            f"model {target} does not accept image input (its modalities: "
            f"{', '.join(info.input_modalities)}); remove the image or choose another model"
        )
