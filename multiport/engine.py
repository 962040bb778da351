"""The request pipeline, the same for every provider; no web framework here.

decode (`anthropic_wire`) → resolve the model (`mapping`) → neutral request (`normalize`)
→ render the upstream request (`templates`) → call the upstream (`upstream`) → translate
the answer (`answer`, or `relay` + `streaming` for streams). Every error text that leaves
passes the request's `Scrubber` (`scrub`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import __version__, metrics
from .admission import Gate, Ticket, check_model, check_request, offload
from .answer import fold, message_events
from .anthropic_wire import (
    MessagesRequest,
    PassthroughRequest,
    decode_messages,
    decode_passthrough,
)
from .catalog import Catalog
from .contracts import RenderedAnswer
from .errors import (
    AuthenticationError,
    InvalidRequest,
    NotFound,
    TemplateInputError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from .mapping import Resolution, resolve
from .normalize import Neutral
from .passthrough import passthrough_stream, with_model
from .provider import Provider, merge_headers
from .relay import guarded, translate_stream
from .render import render_request
from .requestlog import Record
from .scrub import Scrubber, client_key, excerpt
from .streaming import StreamState, encode_events
from .tokens import count_body, estimate_tokens
from .upstream import Upstream, read_body

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
    url: str
    neutral: Neutral
    context: dict[str, Any]  # what response and stream templates see
    input_estimate: int
    scrub: Scrubber
    record: Record


@dataclass(frozen=True)
class Answer:
    """A complete JSON answer, or a stream of SSE bytes, and headers to add."""

    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Engine:
    """Everything one provider port does, given its compiled provider."""

    def __init__(self, provider: Provider, upstream: Upstream, catalog: Catalog) -> None:
        self.provider = provider
        self.upstream = upstream
        self.catalog = catalog
        self.scrubber = Scrubber(provider.secrets)
        self._spec_options = provider.spec.options
        self._auth_header = provider.spec.auth.header.lower()
        self._bearer = self._auth_header == "authorization"
        self._forward = tuple(h.lower() for h in provider.spec.options.forward_headers)
        self._keep_thinking = provider.spec.options.reasoning == "thinking"
        defaults = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "user-agent": f"multiport/{__version__}",
        }
        self._base_headers = merge_headers(defaults, provider.upstream_headers)
        self.limits = provider.spec.limits
        self.gate = Gate(provider.name, self.limits.concurrent_requests)

    @property
    def name(self) -> str:
        return self.provider.name

    def scrubber_for(self, client_headers: Mapping[str, str]) -> Scrubber:
        """The provider's secrets and the key this client sent."""
        return self.scrubber.with_secret(client_key(client_headers))

    # model resolution

    def resolve(self, model: str) -> Resolution:
        catalog = self.catalog
        live = catalog.models and catalog.source != "fallback"
        # A fallback list is not the whole catalog: it never rules candidates out, but
        # every id it lists is served as itself.
        return resolve(model, self.provider.rules, catalog.has if live else None, catalog.has)

    def _target(self, model: str) -> str:
        check_model(model, self.limits, f"provider {self.provider.name}")
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

    def _headers(
        self, client_headers: Mapping[str, str], model: str, request_id: str
    ) -> dict[str, str]:
        headers = dict(self._base_headers)
        for name, template in self.provider.header_templates.items():
            headers[name] = template.value(request_id, model)
        for name in self._forward:
            value = client_headers.get(name)
            if value is not None:
                headers[name] = value
        if self.provider.spec.auth.passthrough:
            key = client_key(client_headers)
            if key:
                headers[self._auth_header] = f"Bearer {key}" if self._bearer else key
                return headers
        if self.provider.missing_credentials:
            names = ", ".join(self.provider.missing_credentials)
            raise AuthenticationError(
                f"provider {self.provider.name} has no upstream credentials: set {names} "
                f"(read by {self.provider.file}) and restart multiport"
            )
        return headers

    # messages

    async def messages(
        self,
        body: bytes,
        client_headers: Mapping[str, str],
        request_id: str = "",
        record: Record | None = None,
    ) -> Answer:
        """Answer a client's `POST /v1/messages`, the upstream model picked by the mappings."""
        record = record or Record(self.name, "messages", request_id)
        request: MessagesRequest | PassthroughRequest
        if self.provider.wire.passthrough:
            # An Anthropic upstream reads the body itself; only what routing needs is read.
            request = decode_passthrough(body)
        else:
            request = await offload(len(body), decode_messages, body)
        record.model = request.model
        target = self._target(request.model)
        return await self.forward(body, request, target, client_headers, request_id, record)

    async def forward(
        self,
        body: bytes,
        request: MessagesRequest | PassthroughRequest,
        target: str,
        client_headers: Mapping[str, str],
        request_id: str = "",
        record: Record | None = None,
    ) -> Answer:
        """Answer `request` with the upstream model `target` (a mapping or a router chose it).

        Raises before the first byte when the upstream fails, so a caller may try another.
        A provider with `limits.concurrent_requests` calls in flight refuses it at once.
        `record` learns the provider, the upstream model and the upstream's status.
        """
        record = record or Record(self.name, "messages", request_id)
        # A model name may hold a secret (a tenant in it): the log shows it scrubbed.
        record.provider, record.target, record.upstream_status = self.name, self.scrubber(target), 0
        ticket = self.gate.enter()
        try:
            answer = await self._answer(body, request, target, client_headers, record, ticket)
        except BaseException as exc:
            ticket.release()
            if isinstance(exc, UpstreamError):
                if isinstance(exc, UpstreamStatusError):
                    record.upstream_status = exc.upstream_status
                metrics.upstream_answered(self.name, record.upstream_status)
            raise
        if not ticket.handed_over:
            ticket.release()
        metrics.upstream_answered(self.name, record.upstream_status)
        return answer

    async def _answer(
        self,
        body: bytes,
        request: MessagesRequest | PassthroughRequest,
        target: str,
        client_headers: Mapping[str, str],
        record: Record,
        ticket: Ticket,
    ) -> Answer:
        scrub = self.scrubber_for(client_headers)
        headers = self._headers(client_headers, target, record.request_id)
        if self.provider.wire.passthrough:
            light = PassthroughRequest(model=request.model, stream=request.stream)
            return await self._passthrough(body, light, target, headers, scrub, record, ticket)
        if not isinstance(request, MessagesRequest):
            request = await offload(len(body), decode_messages, body)
        upstream_stream = request.stream and self._spec_options.can_stream
        call = await offload(
            len(body), self._translate, request, target, headers, scrub, upstream_stream, record
        )
        extra = (
            {"multiport-dropped-tools": _header_value(", ".join(call.neutral.dropped_tools))}
            if call.neutral.dropped_tools
            else {}
        )
        if upstream_stream:
            return Answer(stream=await self._stream(call, ticket), headers=extra)
        answer, size = await self._complete(call)
        state = self._state(call)
        # A big answer (many blocks or tool calls) is folded off the loop, as a big request.
        frames = await offload(size, _frames, state, answer, bool(request.stream))
        if request.stream:
            # An upstream that cannot stream, replayed as a stream.
            return Answer(stream=_replay(frames), headers=extra)
        return Answer(body=frames, headers=extra)

    def _translate(
        self,
        request: MessagesRequest,
        target: str,
        headers: dict[str, str],
        scrub: Scrubber,
        stream: bool,
        record: Record,
    ) -> _Call:
        check_request(request, self.limits, f"provider {self.provider.name}")
        info = self.catalog.get(target)
        rendered = render_request(self.provider, request, target, info=info, stream=stream)
        context = {
            "request": rendered.data,
            "options": self.provider.template_options,
            "model": target,
        }
        estimate = estimate_tokens(request.system, request.messages, request.tools)
        url = self.provider.url_for(target, stream)
        return _Call(
            rendered.body,
            headers,
            request.model,
            url,
            rendered.neutral,
            context,
            estimate,
            scrub,
            record,
        )

    def _state(self, call: _Call) -> StreamState:
        return StreamState(
            call.model,
            call.neutral.tool_names,
            call.input_estimate,
            self._keep_thinking,
            self._spec_options.tool_stream,
        )

    async def _complete(self, call: _Call) -> tuple[RenderedAnswer, int]:
        async with self.upstream.open(call.url, call.headers, call.payload) as response:
            call.record.upstream_status = response.status_code
            raw = await read_body(response)
        return await offload(len(raw), self._read_answer, raw, call), len(raw)

    def _read_answer(self, raw: bytes, call: _Call) -> RenderedAnswer:
        host = self.upstream.host
        try:
            document = _decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise UpstreamProtocolError(
                f"the upstream {host} answered invalid JSON: {excerpt(raw)}"
            ) from None
        if isinstance(document, dict) and document.get("error"):
            error = document["error"]
            message = (error.get("message") if isinstance(error, dict) else None) or error
            raise UpstreamError(f"the upstream {host} reported an error: {message}")
        template = self.provider.wire.response
        assert template is not None
        try:
            answer: RenderedAnswer = template.render(response=document, **call.context)
        except TemplateInputError as exc:
            raise UpstreamProtocolError(
                f"the upstream {host} answered in a shape the response template cannot read: "
                f"{exc.message}"
            ) from None
        return answer

    async def _stream(self, call: _Call, ticket: Ticket) -> AsyncIterator[bytes]:
        # Enter the upstream call now, so a failure is still a real HTTP status.
        stack = contextlib.AsyncExitStack()
        response = await stack.enter_async_context(
            self.upstream.open(call.url, call.headers, call.payload)
        )
        call.record.upstream_status = response.status_code
        template = self.provider.wire.stream
        assert template is not None
        frames = translate_stream(
            response.aiter_bytes(),
            self._state(call),
            template,
            call.context,
            framing=self.provider.wire.framing,
            ping_interval=self._spec_options.ping_interval,
            host=self.upstream.host,
            line_bytes=self.provider.spec.limits.stream_line_bytes,
        )
        label = self._label(call.record)
        return ticket.hand_over(guarded(frames, stack, call.scrub, label), stack)

    async def _passthrough(
        self,
        body: bytes,
        request: PassthroughRequest,
        target: str,
        headers: dict[str, str],
        scrub: Scrubber,
        record: Record,
        ticket: Ticket,
    ) -> Answer:
        body = with_model(body, request.model, target)
        url = self.provider.url_for(target, bool(request.stream))
        if not request.stream:
            async with self.upstream.open(url, headers, body) as response:
                record.upstream_status = response.status_code
                return Answer(body=scrub.bytes(await read_body(response)))
        stack = contextlib.AsyncExitStack()
        response = await stack.enter_async_context(self.upstream.open(url, headers, body))
        record.upstream_status = response.status_code
        limit = self.provider.spec.limits.stream_line_bytes
        frames = passthrough_stream(response.aiter_bytes(), scrub, self.upstream.host, limit)
        label = self._label(record)
        return Answer(stream=ticket.hand_over(guarded(frames, stack, scrub, label), stack))

    def _label(self, record: Record) -> str:
        """Who a stream's failure is logged as: the provider and the request id."""
        return f"{self.provider.name} {record.request_id}".rstrip()

    # other endpoints

    async def count_tokens(
        self, body: bytes, client_headers: Mapping[str, str], request_id: str = ""
    ) -> bytes:
        """`{"input_tokens": N}`: the upstream's own count where it has one, else an estimate."""
        if self._spec_options.count_tokens == "upstream" and self.provider.wire.passthrough:
            light = decode_passthrough(body)
            target = self._target(light.model)
            body = with_model(body, light.model, target)
            url = self.provider.url_for(target, False) + "/count_tokens"
            headers = self._headers(client_headers, target, request_id)
            async with self.upstream.open(url, headers, body) as response:
                return self.scrubber_for(client_headers).bytes(await read_body(response))
        try:
            count = await offload(len(body), count_body, body)
        except InvalidRequest:
            if not self.provider.wire.passthrough:
                raise
            # An Anthropic upstream reads shapes multiport does not: count the body roughly.
            count = max(1, len(body) // 4)
        return _encode({"input_tokens": count})


def _header_value(text: str) -> str:
    """Client-given text made safe for a header: printable ASCII on one line."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:1000]


def _frames(state: StreamState, answer: RenderedAnswer, stream: bool) -> bytes:
    """A complete answer as the client asked for it: SSE frames, or one JSON message."""
    events = message_events(state, answer)
    return encode_events(events) if stream else _encode(fold(events))


async def _replay(frames: bytes) -> AsyncIterator[bytes]:
    yield frames
