"""Model catalogs: fetched in the background, extracted by JSONPath, cached on disk.

A request never waits for a catalog. The order of trust: a live answer, then the last
good answer kept on disk, then the static fallback list in the YAML.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from . import __version__, metrics
from .errors import MultiportError
from .file_secrets import is_credential_name
from .provider import Provider, merge_headers
from .scrub import Scrubber, clean
from .upstream import Upstream
from .workers import worker_index

__all__ = ["Catalog", "ModelInfo", "cache_dir", "catalog_headers"]

log = logging.getLogger("multiport.catalog")
_FOLLOW_SECONDS = 1.0  # how often a worker but the first looks for a newer cache file
_CATALOG_HEADERS = {"accept": "application/json", "user-agent": f"multiport/{__version__}"}


class ModelInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """What multiport knows of one upstream model."""

    id: str
    display_name: str | None = None
    owned_by: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: tuple[str, ...] = ()
    input_modalities: tuple[str, ...] = ()
    created: int | None = None  # epoch seconds


class _CacheFile(msgspec.Struct):
    url: str
    fetched_at: float
    models: list[ModelInfo]
    etag: str | None = None


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by its owner only (0600), whatever it was before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def cache_dir() -> Path:
    """`MULTIPORT_CACHE_DIR`, else the user cache folder."""
    explicit = os.environ.get("MULTIPORT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "multiport"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """scheme, host and port of `url`; None when it cannot be read."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


def catalog_headers(provider: Provider) -> dict[str, str]:
    """The headers of a catalog request: the provider's, less its credentials when the
    catalog is on another origin than `base_url` (unless `catalog.send_auth`), then the
    catalog's own `headers`, sent as written."""
    paths = provider.catalog
    assert paths is not None
    assert paths.url is not None
    origin = _origin(paths.url)
    same_origin = origin is not None and origin == _origin(provider.base_url)
    send_auth = paths.spec.send_auth if paths.spec.send_auth is not None else same_origin
    auth = provider.spec.auth.header.lower()
    ours = {
        name: value
        for name, value in provider.upstream_headers.items()
        if send_auth or not _is_credential(name, value, auth, provider.secrets)
    }
    return merge_headers(_CATALOG_HEADERS, ours, paths.spec.headers)


def _is_credential(name: str, value: str | None, auth: str, secrets: tuple[str, ...]) -> bool:
    """The auth header, a header named like one, or a header holding a secret."""
    if name.lower() == auth or is_credential_name(name):
        return True
    return value is not None and any(secret in value for secret in secrets)


def _scalar(paths: Any, item: Any) -> Any:
    if paths is None:
        return None
    found = paths.find(item)
    return found[0].value if found else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        return tuple(str(k) for k, v in value.items() if v)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _epoch(value: Any) -> int | None:
    """Seconds since 1970 from an epoch number, a numeric string or ISO 8601; else None."""
    seconds: float
    if isinstance(value, bool):  # an int subclass, but `true` is no date
        return None
    if isinstance(value, int | float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                # Python 3.11 reads `Z`, offsets and a bare date.
                when = dt.datetime.fromisoformat(text)
            except ValueError:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)  # no offset given: read it as UTC
            seconds = when.timestamp()
    else:
        return None
    try:
        # A number no date can show would break every later formatting of it.
        dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return int(seconds)


@dataclass
class Catalog:
    """The models of one provider and where the list came from."""

    provider: Provider
    directory: Path = field(default_factory=cache_dir)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    source: str = "none"
    fetched_at: float | None = None
    last_error: str | None = None
    etag: str | None = None
    scrub: Scrubber = field(init=False, repr=False)
    _headers: dict[str, str] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.scrub = Scrubber(self.provider.secrets)
        paths = self.provider.catalog
        if paths is None:
            return
        if paths.url is not None:
            self._headers = catalog_headers(self.provider)
        if not self._load_cache() and paths.spec.fallback:
            self.models = {m: ModelInfo(m) for m in paths.spec.fallback}
            self.source = "fallback"

    @property
    def _cache_file(self) -> Path:
        return self.directory / f"{self.provider.name}.json"

    def has(self, model: str) -> bool:
        return model in self.models

    def get(self, model: str) -> ModelInfo | None:
        return self.models.get(model)

    def state(self) -> dict[str, Any]:
        age = None if self.fetched_at is None else round(time.time() - self.fetched_at, 1)
        return {
            "size": len(self.models),
            "source": self.source,
            "age_seconds": age,
            "last_error": self.last_error,
        }

    def _load_cache(self) -> bool:
        paths = self.provider.catalog
        try:
            cached = msgspec.json.decode(self._cache_file.read_bytes(), type=_CacheFile)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return False
        # The file keeps the URL scrubbed (a key in its query is no business of the disk).
        if paths is None or paths.url is None or cached.url != self.scrub(paths.url):
            return False
        if not cached.models:
            return False
        self.models = {m.id: m for m in cached.models}
        self.source, self.fetched_at, self.etag = "cache", cached.fetched_at, cached.etag
        return True

    def _save_cache(self) -> None:
        paths = self.provider.catalog
        assert paths is not None
        assert paths.url is not None  # saved only after a fetch
        assert self.fetched_at is not None
        url = self.scrub(paths.url)
        data = _CacheFile(url, self.fetched_at, list(self.models.values()), self.etag)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._cache_file.with_suffix(".tmp")
            _write_private(tmp, self.scrub.bytes(msgspec.json.encode(data)))
            tmp.replace(self._cache_file)
        except OSError as exc:
            log.warning(
                "%s: cannot write the catalog cache %s: %s",
                self.provider.name,
                self._cache_file,
                clean(str(exc), self.scrub),
            )

    def extract(self, document: Any) -> dict[str, ModelInfo]:
        """Models found in one catalog document, by the provider's JSONPaths."""
        paths = self.provider.catalog
        assert paths is not None
        models: dict[str, ModelInfo] = {}
        for match in paths.items.find(document):
            item = match.value
            model_id = _scalar(paths.id, item)
            if not isinstance(model_id, str | int) or model_id == "":
                continue
            prefix = paths.spec.id_prefix
            if prefix and isinstance(model_id, str):
                model_id = model_id.removeprefix(prefix)
            fields = {name: _scalar(path, item) for name, path in paths.fields.items()}
            capabilities = _strings(fields.get("capabilities"))
            if not all(c in capabilities for c in paths.spec.require_capabilities):
                continue
            models[str(model_id)] = ModelInfo(
                id=str(model_id),
                display_name=str(fields["display_name"]) if fields.get("display_name") else None,
                owned_by=str(fields["owned_by"]) if fields.get("owned_by") else None,
                context_window=_int(fields.get("context_window")),
                max_output_tokens=_int(fields.get("max_output_tokens")),
                capabilities=capabilities,
                input_modalities=_strings(fields.get("input_modalities")),
                created=_epoch(fields.get("created")),
            )
        return models

    async def refresh(self, upstream: Upstream) -> None:
        """Fetch once; on any failure keep what is there and record the error."""
        paths = self.provider.catalog
        if paths is None or paths.url is None:
            return  # a fallback list only: nothing to fetch
        headers = dict(self._headers)
        if self.etag:
            headers["If-None-Match"] = self.etag
        try:
            status, document, response_headers = await upstream.get_json(
                paths.url, headers, paths.spec.timeout
            )
            if status != 304:
                models = self.extract(document)
                if not models:
                    raise MultiportError(
                        "the catalog answer held no model ids at the configured JSONPaths"
                    )
                self.models = models
                self.etag = response_headers.get("etag")
            self.fetched_at = time.time()
            self.source, self.last_error = "live", None
            self._save_cache()
            metrics.catalog_refreshed(self.provider.name, ok=True)
        except MultiportError as exc:
            metrics.catalog_refreshed(self.provider.name, ok=False)
            # Shown by /health and /info: scrubbed like every error that leaves.
            self.last_error = clean(str(exc), self.scrub)
            log.warning(
                "%s: catalog refresh failed, keeping %d models (%s): %s",
                self.provider.name,
                len(self.models),
                self.source,
                self.last_error,
            )

    async def run(self, upstream: Upstream) -> None:
        """Refresh now and then on the interval, until cancelled.

        Under `serve --workers`, only worker 0 fetches; the others follow the cache file it
        writes, so the upstream sees one fetch whatever the number of workers.
        """
        paths = self.provider.catalog
        if paths is None or paths.url is None or self.provider.missing_credentials:
            return
        if worker_index() not in (None, 0):
            await self._follow()
            return
        while True:
            await self.refresh(upstream)
            if paths.spec.refresh <= 0:
                return
            await asyncio.sleep(paths.spec.refresh)

    async def _follow(self) -> None:
        """Load the cache file each time it changes, until cancelled."""
        seen: float | None = None
        while True:
            with contextlib.suppress(OSError):
                changed = self._cache_file.stat().st_mtime
                if changed != seen and self._load_cache():
                    seen = changed
            await asyncio.sleep(_FOLLOW_SECONDS)
