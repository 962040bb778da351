"""Which values of a provider file are secrets, so the scrubber removes them everywhere.

The rule, decided once at load (docs/provider-configuration.md, "Where secrets may appear"):

- `auth.value` always, and in `headers` and `catalog.headers` a value that used a
  `${VAR}`: each word of it (`Bearer sk-…` gives `sk-…`), defaults included, and each
  variable's own value.
- anywhere else: the value of a variable whose name says it holds a credential
  (`…_KEY`, `…_TOKEN`, `…_SECRET`, `…_PASSWORD`, `…_AUTH`, …), as the environment gives it.
- `access.keys`, each whole: the keys clients send to the gateway.
- `base_url`, `catalog.url` and `proxy`: the password of the URL (or its user name when it
  has no password) always; a query value when a variable supplied any of it. The rest of a URL
  (scheme, host, port, path) is not secret, so `${OPENAI_BASE_URL:-https://…/v1}` stays
  readable.

Other variables (a model or deployment name, an API version, a host) are not secrets: were
they scrubbed, `/v1/models` and `/info` would list `[redacted]` for the models a client
must name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote_plus, urlsplit

from ._yamlsource import Path
from .loader import LoadedFile
from .scrub import MIN_SECRET
from .spec import ProviderSpec

__all__ = ["file_secrets", "is_credential_name"]

# A part of a variable or header name, ending at `_`, `-` or the end: `API_KEY`,
# `x-api-key`, `Authorization`, `GITHUB_TOKEN`; not `TOKENIZER` or `AUTHOR`.
_CREDENTIAL = re.compile(
    r"(KEY|TOKEN|SECRET|PASS(WORD|WD)?|PWD|CRED(ENTIALS?)?|AUTH(ORIZATION)?|COOKIE|SIGNATURE)"
    r"([_-]|$)",
    re.IGNORECASE,
)
_SCHEMES = {"bearer", "basic", "token"}


def is_credential_name(name: str) -> bool:
    """Whether a variable or header name says that its value is a credential."""
    return _CREDENTIAL.search(name) is not None


def file_secrets(loaded: LoadedFile, spec: ProviderSpec) -> tuple[str, ...]:
    """Every secret of one provider file, longest first."""
    found = {
        *_header_secrets(loaded, spec),
        *_named_secrets(loaded),
        *_url_secrets(loaded, spec.base_url, ("base_url",)),
        *_url_secrets(loaded, spec.catalog.url if spec.catalog else None, ("catalog", "url")),
        *_url_secrets(loaded, spec.proxy if isinstance(spec.proxy, str) else None, ("proxy",)),
        *spec.access.keys,
    }
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True))


def _words(value: str) -> Iterator[str]:
    """Each word of a value but an auth scheme (a value of one word is itself)."""
    return (w for w in value.split() if w.lower() not in _SCHEMES)


def _header_value(spec: ProviderSpec, path: Path) -> str | None:
    """The value, after substitution, of the auth or header at `path`; None elsewhere."""
    if path == ("auth", "value"):
        return spec.auth.value
    if len(path) == 2 and path[0] == "headers":
        return spec.headers.get(str(path[1]))
    if len(path) == 3 and path[:2] == ("catalog", "headers") and spec.catalog is not None:
        return spec.catalog.headers.get(str(path[2]))
    return None


def _header_secrets(loaded: LoadedFile, spec: ProviderSpec) -> Iterator[str]:
    """Auth and header values that used a variable, defaults included; and the auth value
    whatever it is, for it is the credential even when written without a variable."""
    values = [spec.auth.value]
    for path, names in loaded.used_env.items():
        value = _header_value(spec, path)
        if value is not None:
            # The whole value, and each variable's own, wherever it sits in the value.
            values += [value, *(loaded.env.get(name) for name in names)]
    for value in values:
        if value:
            yield from _words(value)


def _named_secrets(loaded: LoadedFile) -> Iterator[str]:
    for names in loaded.used_env.values():
        for name in names:
            value = loaded.env.get(name)
            if value and is_credential_name(name):
                yield from _words(value)


def _url_secrets(loaded: LoadedFile, url: str | None, place: tuple[str, ...]) -> Iterator[str]:
    """The URL's password (or lone user name), and query values a variable supplied."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:  # a bad URL is reported by the compile step; keep what can be read
        return
    if password or user:
        yield from _forms(password or user or "")
    supplied = [
        loaded.env.get(name, "")
        for path, names in loaded.used_env.items()
        if path == place
        for name in names
    ]
    for piece in parts.query.split("&"):
        forms = set(_forms(piece.partition("=")[2]))
        if any(_overlap(form, value) for form in forms for value in supplied):
            yield from forms


def _overlap(part: str, value: str) -> bool:
    """Whether a variable's value supplied some of a URL part (or all of it)."""
    return bool(part) and (part in value or (len(value) >= MIN_SECRET and value in part))


def _forms(value: str) -> Iterator[str]:
    """A URL part as written, and percent-decoded (logs may show either)."""
    yield value
    yield unquote_plus(value)
