"""Which outbound proxy an upstream URL is reached through: decided once, when a port starts.

`proxy:` in the provider file decides first: a URL is that proxy; `false` is none, whatever
the environment says. Unset (or `true`, or empty), the environment decides, read as curl
reads it:

- `https_proxy` for an `https://` URL, `http_proxy` for an `http://` one, else `all_proxy`;
  each in lower case first, then upper case; an empty value counts as unset.
- `no_proxy` lists what is reached directly, separated by commas or spaces: `*` (all), a
  host (`api.example.com`, its subdomains too), a domain (`.example.com`,
  `*.example.com`), `host:port` (that port only), an IP address or network (`10.0.0.0/8`,
  `::1`, `[::1]:8080`).

A proxy is `http://` or `https://`; one written without a scheme (`proxy:3128`) is
`http://`. Its user name and password go to the proxy only, as `Proxy-Authorization`:
what a log line, an error or `/info` shows is `Proxy.shown`, which leaves them out.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from .scrub import MIN_SECRET, redact_url

__all__ = ["Proxy", "UnusableProxy", "bypassed", "choose_proxy", "proxy_problem"]

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SEPARATORS = re.compile(r"[,\s]+")
_REDACTED = "[redacted]"


class UnusableProxy(ValueError):
    """A proxy variable whose value is not an http:// or https:// proxy URL."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy chosen for an upstream URL, and what chose it."""

    url: str  # credentials included: for the transport only
    source: str  # the variable that holds it, or `proxy:` in the provider file

    @property
    def shown(self) -> str:
        """The proxy's URL without user name or password, fit for a log line or `/info`."""
        return redact_url(self.url)

    def for_transport(self) -> httpx.Proxy:
        """The proxy as both transports take it: its credentials go in the CONNECT that
        opens a tunnel to an https:// upstream."""
        url = httpx.URL(self.url)
        authorization = self.authorization()
        if authorization is None:
            return httpx.Proxy(url)
        # A header, not `auth`: httpx-aiohttp turns `auth` into aiohttp's deprecated
        # BasicAuth, while a header reaches both transports the same way.
        bare = url.copy_with(username=None, password=None)
        return httpx.Proxy(bare, headers={"Proxy-Authorization": authorization})

    def forward_headers(self, target: str) -> dict[str, str]:
        """The headers a request to `target` carries for the proxy itself: to an http://
        upstream the proxy reads the request (aiohttp does not add them there); to an
        https:// one it only carries the tunnel, and the request is none of its business."""
        authorization = self.authorization()
        if authorization is None or not target.startswith("http://"):
            return {}
        return {"proxy-authorization": authorization}

    def authorization(self) -> str | None:
        """`Proxy-Authorization` for the proxy URL's user name and password, if it has any."""
        url = httpx.URL(self.url)
        if not (url.username or url.password):
            return None
        pair = f"{url.username}:{url.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def hide(self, text: str) -> str:
        """`text` without the proxy's password or user name, as written or percent-decoded."""
        for secret in _credentials(self.url):
            text = text.replace(secret, _REDACTED)
        return text


def choose_proxy(
    setting: str | bool | None, target: str, environ: Mapping[str, str]
) -> Proxy | None:
    """The proxy that requests to `target` go through under the provider's `proxy:`
    setting and the environment; None for a direct connection.

    Raises `UnusableProxy` when the variable that would decide holds no usable proxy URL.
    """
    if setting is False:
        return None
    if isinstance(setting, str) and setting:
        found: tuple[str, str] | None = ("`proxy:` in the provider file", setting)
    else:
        found = _from_environ(target, environ)
    if found is None:
        return None
    source, value = found
    problem = proxy_problem(value)
    if problem is not None:
        raise UnusableProxy(f"{source} {problem}")
    return Proxy(_with_scheme(value), source)


def proxy_problem(url: str) -> str | None:
    """Why `url` cannot be used as a proxy (the URL shown without credentials), or None."""
    try:
        parts = urlsplit(_with_scheme(url))
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{redact_url(url)!r} is not a URL; write e.g. http://proxy.example:3128"
    if parts.scheme not in _SCHEMES or not parts.hostname:
        return (
            f"{redact_url(url)!r} is not an http:// or https:// proxy URL "
            "(SOCKS proxies are not supported); write e.g. http://proxy.example:3128"
        )
    return None


def bypassed(no_proxy: str, host: str, port: int) -> bool:
    """Whether `no_proxy` (a `NO_PROXY` value) says `host` on `port` is reached directly."""
    host = host.lower().rstrip(".")
    for entry in _SEPARATORS.split(no_proxy.lower()):
        if entry == "*":
            return True
        name, wanted = _host_port(entry)
        if name and (wanted is None or wanted == port) and _covers(name, host):
            return True
    return False


def _from_environ(target: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The proxy variable that applies to `target` and its value; None when there is
    none or `no_proxy` covers the target."""
    url = httpx.URL(target)
    found = _variable(environ, f"{url.scheme}_proxy") or _variable(environ, "all_proxy")
    no_proxy = _variable(environ, "no_proxy")
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)
    if found is None or (no_proxy is not None and bypassed(no_proxy[1], url.host, port)):
        return None
    return found


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The variable `name` (lower case first, then upper case) and its value, if not empty."""
    for key in (name, name.upper()):
        value = environ.get(key, "").strip()
        if value:
            return key, value
    return None


def _with_scheme(url: str) -> str:
    return url if "://" in url else "http://" + url


def _host_port(entry: str) -> tuple[str, int | None]:
    """The host of a `no_proxy` entry and its port if it names one; no host when the port
    is not a number."""
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:  # host:port (a bare IPv6 address has more colons)
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if not port:
        return host, None
    return (host, int(port)) if port.isdigit() else ("", None)


def _covers(name: str, host: str) -> bool:
    """Whether a `no_proxy` host, domain or network covers `host`."""
    name = name.removeprefix("*").removeprefix(".").rstrip(".")
    if not name:
        return False
    if host == name or host.endswith("." + name):
        return True
    try:
        if "/" in name:
            return ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False)
        return ipaddress.ip_address(host) == ipaddress.ip_address(name)
    except ValueError:  # not addresses: only the names could match, and did not
        return False


def _credentials(url: str) -> Iterator[str]:
    """The password (or lone user name) of a proxy URL, as written and percent-decoded."""
    try:
        parts = urlsplit(url)
        secret = parts.password or parts.username
    except ValueError:
        return
    if secret:
        for form in {secret, unquote(secret)}:
            if len(form) >= MIN_SECRET:
                yield form
