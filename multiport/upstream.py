"""One pooled httpx.AsyncClient per provider; transport errors mapped to the error tree.

Every call runs under a `Watchdog` (the provider's `timeouts:`) and its answer is read as
an `UpstreamBody`: decoded in bounded steps, a complete answer at most
`limits.answer_bytes` as received and as decoded. The outbound proxy (`proxies.py`) is
chosen once, here, for the message URL and the catalog URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from .errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from .limits_spec import LimitsSpec
from .provider import Provider
from .proxies import Proxy, UnusableProxy, choose_proxy
from .upstream_body import (
    ACCEPT_ENCODING,
    FIRST_BYTE,
    Timing,
    UpstreamBody,
    Watchdog,
    bounded,
    too_large,
)

__all__ = ["Upstream", "make_transport", "read_body", "stream_error"]

_decode = msgspec.json.decode
log = logging.getLogger("multiport.upstream")


def make_transport(name: str | None = None, proxy: Proxy | None = None) -> httpx.AsyncBaseTransport:
    """The upstream transport: aiohttp's (fast under concurrency) unless told otherwise,
    through `proxy` when one is given.

    `MULTIPORT_TRANSPORT=httpx` selects httpx's own transport.
    """
    name = name or os.environ.get("MULTIPORT_TRANSPORT", "aiohttp")
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
    via = proxy.for_transport() if proxy is not None else None
    if name == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits, proxy=via)
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits, proxy=via)


class Upstream:
    """The provider's upstream: sends requests and maps failures to the error tree.

    Without a `transport`, one is made for the proxy that `proxy:` and the environment
    (`environ`, by default the process's) choose for `base_url`, and another for the
    catalog when its URL gets a different one; a given `transport` is used as it is.
    """

    def __init__(
        self,
        provider: Provider,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        timeouts = provider.spec.timeouts
        self.provider = provider
        self.host = httpx.URL(provider.base_url).host
        environ = os.environ if environ is None else environ
        name = environ.get("MULTIPORT_TRANSPORT")
        self.proxy = _proxy(provider, provider.base_url, environ) if transport is None else None
        self.transport = transport if transport is not None else make_transport(name, self.proxy)
        # Reads are timed by the watchdog, not the transport: a transport's read timeout
        # also bounds the wait for the headers, which `first_byte` bounds instead.
        timeout = httpx.Timeout(
            connect=timeouts.connect, read=None, write=timeouts.write, pool=timeouts.pool
        )
        self.client = httpx.AsyncClient(timeout=timeout, transport=self.transport)
        self._catalog, self._catalog_proxy = self.client, self.proxy
        catalog_url = provider.catalog.url if provider.catalog is not None else None
        if transport is None and catalog_url is not None:
            proxy = _proxy(provider, catalog_url, environ)
            if proxy != self.proxy:  # `no_proxy` may name one host and not the other
                own = make_transport(name, proxy)
                self._catalog = httpx.AsyncClient(timeout=timeout, transport=own)
                self._catalog_proxy = proxy
        self._proxy_headers = _forward_headers(self.proxy, provider.base_url)
        self._catalog_proxy_headers = _forward_headers(self._catalog_proxy, catalog_url)
        self._timing = Timing.of(timeouts)
        self._answer_bytes = provider.spec.limits.answer_bytes
        # Message requests go straight to the transport with what the client would add,
        # computed once: httpx's client layer (URL merging, cookies, auth and redirect
        # hooks) cost a fifth of the gateway's CPU per request, and none of it applies.
        self._messages_url = httpx.URL(provider.messages_url)
        self._extensions = {"timeout": timeout.as_dict()}

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._catalog is not self.client:
            await self._catalog.aclose()

    @asynccontextmanager
    async def open(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> AsyncIterator[httpx.Response]:
        """POST and yield the 2xx response, its body bounded (`UpstreamBody`) and timed until
        the context ends; anything else raises an `UpstreamError`."""
        target = self._messages_url if url == self.provider.messages_url else httpx.URL(url)
        if "accept-encoding" not in headers:
            headers = {**headers, "accept-encoding": ACCEPT_ENCODING}
        if self._proxy_headers:
            headers = {**headers, **self._proxy_headers}
        request = httpx.Request(
            "POST", target, headers=headers, content=body, extensions=self._extensions
        )
        with Watchdog(self._timing, self.host) as watch:
            sending = self.transport.handle_async_request(request)
            response = await self._answer(watch, sending, self.proxy)
            response.request = request
            try:
                response = bounded(response, watch, self._answer_bytes)
                if response.status_code >= 300:
                    await self._raise_for_status(response)
                yield response
            finally:
                await response.aclose()

    async def get_json(
        self, url: str, headers: Mapping[str, str], seconds: float
    ) -> tuple[int, Any, httpx.Headers]:
        """GET a JSON document (used by the catalog) within `seconds`; 304 gives None."""
        client = self._catalog
        request = client.build_request("GET", url, headers=headers, timeout=seconds)
        request.headers["accept-encoding"] = ACCEPT_ENCODING
        request.headers.update(self._catalog_proxy_headers)
        timing = Timing(seconds, seconds, seconds, ("catalog.timeout",) * 3)
        with Watchdog(timing, request.url.host) as watch:
            sending = client.send(request, stream=True)
            response = await self._answer(watch, sending, self._catalog_proxy)
            try:
                response = bounded(response, watch, self._answer_bytes)
                status = response.status_code
                if status == 304:
                    return 304, None, response.headers
                if status >= 300:
                    raise UpstreamStatusError(
                        f"catalog answered HTTP {status}", upstream_status=status
                    )
                raw = await read_body(response)
            finally:
                await response.aclose()
        try:
            return status, _decode(raw), response.headers
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"catalog answered invalid JSON: {exc}") from exc

    async def _answer(
        self,
        watch: Watchdog,
        sending: Coroutine[Any, Any, httpx.Response],
        proxy: Proxy | None = None,
    ) -> httpx.Response:
        """The answer's headers, awaited within `timeouts.first_byte`."""
        watch.arm(FIRST_BYTE)
        try:
            return await sending
        except asyncio.CancelledError:
            error = watch.timeout_error()
            if error is None:
                raise
            raise error from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, proxy) from exc
        finally:
            watch.disarm()

    def _transport_error(self, exc: httpx.HTTPError, proxy: Proxy | None) -> UpstreamError:
        if _is_timeout(exc):
            return UpstreamTimeout(f"the upstream {self.host} did not answer in time")
        detail = str(exc) or type(exc).__name__
        if proxy is None:
            return UpstreamUnreachable(f"cannot reach the upstream {self.host}: {detail}")
        # The transports keep the proxy's credentials out of their errors; `hide` makes
        # sure, for credentials from the environment are no secret the scrubber knows.
        return UpstreamUnreachable(
            f"cannot reach the upstream {self.host} through the proxy {proxy.shown} "
            f"(set by {proxy.source}): {proxy.hide(detail)}"
        )

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            raise self._redirect_error(response)
        try:
            raw, _ = await _read_at_most(response, _MAX_ERROR_BODY)
        except (httpx.HTTPError, UpstreamError):
            raw = b""  # the status says enough
        status = response.status_code
        detail = _error_message(raw) or response.reason_phrase or "no detail"
        if status == 407 and self.proxy is not None:
            detail = (
                f"the proxy {self.proxy.shown} (set by {self.proxy.source}) wants credentials: "
                "give them in its URL, http://user:password@host:port"
            )
        error = UpstreamStatusError(
            f"upstream {self.host} answered HTTP {status}: {detail}", upstream_status=status
        )
        retry_after = response.headers.get("retry-after")
        error.retry_after = retry_after
        raise error

    def _redirect_error(self, response: httpx.Response) -> UpstreamError:
        """A 3xx answer: the provider's base_url is out of date, not the request wrong."""
        status = response.status_code
        message = f"upstream {self.host} redirected the request (HTTP {status})"
        location = response.headers.get("location")
        try:
            target = _bare(response.request.url.join(location)) if location else None
        except httpx.InvalidURL:
            target = None
        if target is None:
            message += " without a usable Location; check base_url"
        else:
            # The request went to base_url + suffix; a target ending in that suffix moved
            # base_url, and the rest of the target is the new one.
            sent = _bare(response.request.url)
            suffix = sent[len(self.provider.base_url) :]
            if sent.startswith(self.provider.base_url) and suffix and target.endswith(suffix):
                hint = f"set base_url to {target[: -len(suffix)]}"
            else:
                hint = "point base_url there"
            message += f" to {target}; {hint}"
        return UpstreamError(message)


def _proxy(provider: Provider, url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for `url`, logged once; a proxy variable that is no proxy URL is ignored."""
    try:
        proxy = choose_proxy(provider.spec.proxy, url, environ)
    except UnusableProxy as exc:
        log.warning("%s: %s; it is ignored and %s reached directly", provider.name, exc, _host(url))
        return None
    if proxy is not None:
        log.info(
            "%s: %s is reached through the proxy %s (set by %s)",
            provider.name,
            _host(url),
            proxy.shown,
            proxy.source,
        )
    return proxy


def _forward_headers(proxy: Proxy | None, url: str | None) -> dict[str, str]:
    return proxy.forward_headers(url) if proxy is not None and url is not None else {}


def _host(url: str) -> str:
    return httpx.URL(url).host


def stream_error(exc: httpx.HTTPError, host: str) -> UpstreamError:
    """What a transport failure in the middle of a stream means to the client."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"the upstream {host} went silent mid-stream")
    return UpstreamStreamError(f"the upstream {host} stream broke: {type(exc).__name__}")


def _bare(url: httpx.URL) -> str:
    """scheme://host[:port]/path: no user, password, query or fragment, which may hold keys."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


# Error text is scrubbed where it leaves (scrub.py), then cut shorter than this; longer
# here, so no secret is cut in two before it is scrubbed.
_DETAIL = 2000


def _error_message(raw: bytes) -> str:
    if not raw:
        return ""
    try:
        body = _decode(raw)
    except msgspec.DecodeError:
        return raw[:_DETAIL].decode("utf-8", "replace").strip()
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("code")
            return str(message) if message else raw[:_DETAIL].decode("utf-8", "replace")
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return raw[:_DETAIL].decode("utf-8", "replace")


def _is_timeout(exc: BaseException) -> bool:
    """A real timeout, not a refused or reset connection that a transport called one."""
    # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout; look at the cause.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError) or type(cause).__name__ in (
            "ServerTimeoutError",
            "SocketTimeoutError",
            "ConnectionTimeoutError",
        ):
            return True
        if isinstance(cause, OSError | ConnectionError) or type(cause).__name__ in (
            "ClientConnectorError",
            "ServerDisconnectedError",
            "ClientOSError",
        ):
            return False
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, httpx.TimeoutException)


# The bound of an answer not read through an `UpstreamBody`: the default answer_bytes.
MAX_BODY = LimitsSpec().answer_bytes
_MAX_ERROR_BODY = 64 << 10  # of an error answer only the start is read


async def _read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether there was more (as decoded; an
    `UpstreamBody` raises once more than `limit` bytes were received)."""
    if isinstance(response.stream, UpstreamBody):
        response.stream.most = limit
    pieces: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        pieces.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(pieces)[:limit], True
    return b"".join(pieces), False


async def read_body(response: httpx.Response, limit: int | None = None) -> bytes:
    """The whole body of a 2xx answer; a failure while reading it is the upstream's.

    At most `limit` bytes, as received and as decoded: by default the provider's
    `limits.answer_bytes` for an answer from `Upstream.open`.
    """
    body = response.stream
    if limit is None:
        limit = body.answer_bytes if isinstance(body, UpstreamBody) else MAX_BODY
    try:
        raw, more = await _read_at_most(response, limit)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("the upstream stopped answering mid-response") from exc
    except httpx.HTTPError as exc:
        raise UpstreamProtocolError(f"the upstream answer broke: {type(exc).__name__}") from exc
    if more:
        raise too_large(body.host if isinstance(body, UpstreamBody) else "", limit)
    return raw
