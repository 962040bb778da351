"""Who may use a port: the client keys of `access.keys`, and no open port beyond loopback.

- A port with keys answers every request but `GET /health` and `HEAD /` only when it
  carries one of them in `x-api-key` or `Authorization: Bearer`; otherwise 401
  `authentication_error`, naming the file that sets the keys, never the key sent.
- `validate` refuses a key written in the file (each comes from the environment), a key
  whose variable is unset, short or not a header value, and the settings that would send
  the gateway's key upstream (`auth.passthrough`, `options.forward_headers`).
- `serve` refuses a port on a non-loopback address without keys, unless `--allow-open`.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._yamlsource import Path
from .errors import AuthenticationError
from .loader import LoadedFile

if TYPE_CHECKING:  # `validate` loads this module: it need not import the web stack
    from litestar import Request

    from .provider import Provider
    from .routing import Router

    Hook = Callable[[Request[Any, Any, Any]], Awaitable[None]]

__all__ = ["MIN_KEY_CHARS", "check_access", "check_defaults_access", "key_check", "refuse_open"]

# Long enough that guessing is hopeless; `openssl rand -hex 24` gives 48.
MIN_KEY_CHARS = 16
_OPEN_PATHS = {"/health": None, "/": "HEAD"}  # path → the one method let in (None: any)
_KEY_HEADERS = frozenset({b"x-api-key", b"authorization"})
_CLIENT_KEY_HEADERS = frozenset({"x-api-key", "authorization"})


def key_check(keys: Sequence[str], file: str) -> Hook | None:
    """A `before_request` hook letting in only the requests that carry one of `keys`;
    None for a port without keys, so an open port pays nothing."""
    if not keys:
        return None
    accepted = tuple(key.encode() for key in keys)
    message = (
        "this port needs a key: send x-api-key or Authorization: Bearer; "
        f"set by access.keys in {file}"
    )

    async def check(request: Request[Any, Any, Any]) -> None:
        scope = request.scope
        if scope["path"] in _OPEN_PATHS and _OPEN_PATHS[scope["path"]] in (None, scope["method"]):
            return
        if not _carries_key(scope["headers"], accepted):
            raise AuthenticationError(message)

    return check


def _carries_key(headers: Iterable[tuple[bytes, bytes]], accepted: tuple[bytes, ...]) -> bool:
    """Whether a header holds one of the keys; each sent value is compared with every key
    in constant time, so neither the time nor an early exit tells which came close."""
    found = False
    for name, value in headers:  # ASGI gives names in lower case
        if name not in _KEY_HEADERS:
            continue
        if name == b"authorization":
            if value[:7].lower() != b"bearer ":
                continue
            value = value[7:]
        value = value.strip()
        for key in accepted:
            found |= hmac.compare_digest(value, key)
    return found


def check_access(loaded: LoadedFile) -> None:
    """The `validate` checks of a provider or router file's `access:`, as problems."""
    spec = loaded.spec
    assert spec is not None
    keys = spec.access.keys
    own = loaded.source.data.get("access") if loaded.source is not None else None
    if isinstance(own, dict) and "keys" in own:
        _check_keys(loaded, keys)  # else they are the folder's, checked in _defaults.yaml
    if not keys:
        return
    if spec.auth.passthrough:
        loaded.problem(
            ("auth", "passthrough"),
            "auth.passthrough forwards the client's key upstream, but on a port with "
            "access.keys the client's key is the gateway's: remove one of the two",
        )
    for i, name in enumerate(spec.options.forward_headers):
        if name.lower() in _CLIENT_KEY_HEADERS:
            loaded.problem(
                ("options", "forward_headers", i),
                f"forward_headers would send `{name}`, which carries the gateway key on a "
                "port with access.keys, to the upstream: remove it",
            )


def check_defaults_access(loaded: LoadedFile) -> None:
    """The key checks of a folder's `_defaults.yaml`."""
    access = loaded.defaults.get("access", {})
    _check_keys(loaded, access.get("keys", []))


def _check_keys(loaded: LoadedFile, keys: Sequence[str]) -> None:
    for i, key in enumerate(keys):
        path: Path = ("access", "keys", i)
        names = loaded.used_env.get(path)
        unset = [name for name in names or () if not loaded.env.get(name)]
        if not names:
            loaded.problem(
                path,
                "a key written in the file is readable by anyone who reads the file: "
                'write `"${TEAM_GATEWAY_KEY}"` and set that variable (or put it in env_file)',
            )
        elif unset:
            loaded.problem(
                path,
                f"environment variable {', '.join(unset)} is not set (a default written "
                "in the file is no secret): set it, or put it in env_file",
            )
        elif len(key) < MIN_KEY_CHARS or not key.isascii() or key.split() != [key]:
            loaded.problem(
                path,
                f"the key from {', '.join(names)} must be at least {MIN_KEY_CHARS} "
                "printable ASCII characters without spaces, e.g. `openssl rand -hex 24`",
            )


def is_loopback(host: str) -> bool:
    """Whether a `host:` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def refuse_open(providers: Sequence[Provider], routers: Sequence[Router], *, allow: bool) -> bool:
    """Whether to refuse the start: a port beyond loopback has no keys and `allow` is
    off. Each such port is named on stderr, refused or, with `allow`, warned about."""
    ports = [
        (p.name, p.spec.host, p.spec.port, p.file, tuple(p.spec.access.keys)) for p in providers
    ]
    ports += [(r.name, r.host, r.port, r.file, r.keys) for r in routers]
    open_ports = [p for p in ports if not p[4] and not is_loopback(p[1])]
    for name, host, port, file, _ in open_ports:
        if allow:
            print(
                f"multiport: WARNING: {name} on {host}:{port} is OPEN to anyone who can reach "
                f"it (no access.keys in {file}; --allow-open)",
                file=sys.stderr,
            )
        else:
            print(
                f"multiport: refusing to serve {name} on {host}:{port}: it is reachable "
                "beyond this machine and has no access.keys, so anyone who reaches it uses "
                f"the upstream's credentials. Set access.keys in {file} (or the folder's "
                "_defaults.yaml), listen on host 127.0.0.1, or start with --allow-open.",
                file=sys.stderr,
            )
    return bool(open_ports) and not allow
