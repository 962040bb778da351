"""The request pipeline, the same for every provider; no web framework here.

decode → resolve the model → render the upstream request → call the upstream →
translate the answer (a message, or an Anthropic SSE stream).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from . import __version__
from .answer import build_message, replay_stream_events
from .anthropic_wire import MessagesRequest, decode_count, decode_messages
from .catalog import Catalog
from .compile import Provider
from .errors import (
    ApiError,
    AuthenticationError,
    InvalidRequest,
    NotFound,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from .mapping import Resolution, resolve
from .normalize import Neutral, build_neutral
from .relay import translate_stream
from .streaming import StreamState, error_frame
from .tokens import estimate_tokens
from .upstream import Upstream

__all__ = ["Answer", "Engine"]

log = logging.getLogger("multiport.engine")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


@dataclass(frozen=True)
class _Call:
    """One translated upstream call and what its answer needs."""

    payload: bytes
    headers: dict[str, str]
    model: str  # as the client asked
    neutral: Neutral
    input_estimate: int


@dataclass(frozen=True)
class Answer:
    """A complete JSON answer, or a stream of SSE bytes."""

    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None


class Engine:
    """Everything one provider port does, given its compiled provider."""

    def __init__(self, provider: Provider, upstream: Upstream, catalog: Catalog) -> None:
        self.provider = provider
        self.upstream = upstream
        self.catalog = catalog
        self.options = msgspec.to_builtins(provider.spec.options)
        self._auth_header = provider.spec.auth.header
        self._forward = tuple(h.lower() for h in provider.spec.options.forward_headers)
        self._keep_thinking = provider.spec.options.reasoning == "thinking"
        self._base_headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "user-agent": f"multiport/{__version__}",
        }

    # model resolution

    def resolve(self, model: str) -> Resolution:
        available = (
            self.catalog.has if self.catalog.models and self.catalog.source != "fallback" else None
        )
        return resolve(model, self.provider.rules, available)

    def _target(self, model: str) -> str:
        resolution = self.resolve(model)
        if resolution.target is None:
            known = sorted(self.catalog.models)[:20]
            listed = f" Available models include: {', '.join(known)}." if known else ""
            rules = ", ".join(r.pattern.pattern for r in self.provider.rules)
            raise NotFound(
                f"model {model!r} is not served by provider {self.provider.name}: it matches no "
                f"mapping ({rules or 'none'}) and is not in the catalog.{listed}"
            )
        return resolution.target

    # headers

    def _headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        headers = {**self._base_headers, **self.provider.upstream_headers}
        for name in self._forward:
            value = client_headers.get(name)
            if value is not None:
                headers[name] = value
        if self.provider.spec.auth.passthrough:
            key = client_headers.get("x-api-key")
            bearer = client_headers.get("authorization", "")
            if not key and bearer.lower().startswith("bearer "):
                key = bearer[7:].strip()
            if key:
                is_bearer = self._auth_header.lower() == "authorization"
                headers[self._auth_header] = f"Bearer {key}" if is_bearer else key
                return headers
        if self.provider.missing_credentials:
            names = ", ".join(self.provider.missing_credentials)
            raise AuthenticationError(
                f"provider {self.provider.name} has no upstream credentials: set {names} "
                f"(read by {self.provider.file}) and restart multiport"
            )
        return headers

    # messages

    async def messages(self, body: bytes, client_headers: Mapping[str, str]) -> Answer:
        request = decode_messages(body)
        target = self._target(request.model)
        headers = self._headers(client_headers)
        if self.provider.wire.passthrough:
            return await self._passthrough(body, request, target, headers)
        neutral = self._neutral(request, target)
        input_estimate = estimate_tokens(request.system, request.messages, request.tools)
        wants_stream = request.stream
        upstream_stream = wants_stream and self.provider.spec.options.can_stream
        neutral.data["stream"] = upstream_stream
        call = _Call(
            self._render_request(neutral, target), headers, request.model, neutral, input_estimate
        )
        if not upstream_stream:
            message = await self._complete(call)
            if wants_stream:
                return Answer(stream=self._replay(message, call))
            return Answer(body=_encode(message))
        return Answer(stream=await self._stream(call))

    def _neutral(self, request: MessagesRequest, target: str) -> Neutral:
        info = self.catalog.get(target)
        limit = self.provider.output_limit(target, info.max_output_tokens if info else None)
        if (
            info
            and info.input_modalities
            and "image" not in info.input_modalities
            and _has_image(request)
        ):
            raise InvalidRequest(
                f"model {target} does not accept image input (its modalities: "
                f"{', '.join(info.input_modalities)}); remove the image or choose another model"
            )
        return build_neutral(
            request,
            target=target,
            options=self.provider.spec.options,
            strip_keys=self.provider.strip_keys,
            max_tokens_field=self.provider.max_tokens_field(target),
            output_limit=limit,
        )

    def _render_request(self, neutral: Neutral, target: str) -> bytes:
        template = self.provider.wire.request
        assert template is not None
        return _encode(template.render(request=neutral.data, options=self.options, model=target))

    async def _complete(self, call: _Call) -> dict[str, Any]:
        neutral = call.neutral
        url = self.provider.messages_url
        async with self.upstream.open(url, call.headers, call.payload) as response:
            raw = await _read(response)
        try:
            document = _decode(raw)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(
                f"the upstream answered invalid JSON: {raw[:200]!r}"
            ) from exc
        if isinstance(document, dict) and document.get("error"):
            error = document["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(
                f"the upstream reported an error: {self.upstream.scrub(str(message))}"
            )
        template = self.provider.wire.response
        assert template is not None
        rendered = template.render(
            response=document,
            request=neutral.data,
            options=self.options,
            model=neutral.data["model"],
        )
        return build_message(
            rendered,
            model=call.model,
            tool_names=neutral.tool_names,
            input_estimate=call.input_estimate,
        )

    async def _replay(self, message: dict[str, Any], call: _Call) -> AsyncIterator[bytes]:
        state = StreamState(
            call.model, call.neutral.tool_names, call.input_estimate, self._keep_thinking
        )
        state.message_id = message["id"]
        yield state.start()
        for event in replay_stream_events(message):
            yield state.feed(event)
        yield state.finish()

    async def _stream(self, call: _Call) -> AsyncIterator[bytes]:
        # Enter the upstream call now, so a failure is still a real HTTP status (§4 rule 1).
        stack = contextlib.AsyncExitStack()
        response = await stack.enter_async_context(
            self.upstream.open(self.provider.messages_url, call.headers, call.payload)
        )
        neutral = call.neutral
        state = StreamState(
            call.model, neutral.tool_names, call.input_estimate, self._keep_thinking
        )
        template = self.provider.wire.stream
        assert template is not None
        context = {"request": neutral.data, "options": self.options, "model": neutral.data["model"]}

        async def frames() -> AsyncIterator[bytes]:
            async with stack:
                try:
                    async for frame in translate_stream(
                        response.aiter_bytes(),
                        state,
                        template,
                        context,
                        framing=self.provider.wire.framing,
                        ping_interval=self.provider.spec.options.ping_interval,
                    ):
                        yield frame
                except ApiError as exc:
                    log.warning("%s: stream failed: %s", self.provider.name, exc.message)
                    yield error_frame(exc.error_type, self.upstream.scrub(exc.message))

        return frames()

    async def _passthrough(
        self, body: bytes, request: MessagesRequest, target: str, headers: dict[str, str]
    ) -> Answer:
        if target != request.model:
            document = _decode(body)
            document["model"] = target
            body = _encode(document)
        url = self.provider.messages_url
        if not request.stream:
            async with self.upstream.open(url, headers, body) as response:
                return Answer(body=await _read(response))
        stack = contextlib.AsyncExitStack()
        response = await stack.enter_async_context(self.upstream.open(url, headers, body))

        async def frames() -> AsyncIterator[bytes]:
            async with stack:
                try:
                    async for raw in response.aiter_bytes():
                        yield raw
                except httpx.HTTPError as exc:
                    yield error_frame(
                        "api_error", f"the upstream stream broke: {type(exc).__name__}"
                    )

        return Answer(stream=frames())

    # other endpoints

    def count_tokens(self, body: bytes) -> bytes:
        request = decode_count(body)
        return _encode(
            {"input_tokens": estimate_tokens(request.system, request.messages, request.tools)}
        )


def _has_image(request: MessagesRequest) -> bool:
    for message in request.messages:
        if isinstance(message.content, list):
            for block in message.content:
                if block.get("type") == "image":
                    return True
    return False


async def _read(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("the upstream stopped answering mid-response") from exc
    except httpx.HTTPError as exc:
        raise UpstreamProtocolError(f"the upstream answer broke: {type(exc).__name__}") from exc
