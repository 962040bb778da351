"""A provider file's version: a digest of it and of every file it names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .spec import ProviderSpec, TemplateFile

__all__ = ["file_version"]


def file_version(path: Path, spec: ProviderSpec) -> str:
    """12 hex digits that change when the file, a template file or its env_file changes."""
    digest = hashlib.sha256()
    for named in [path, *_named(path.parent, spec)]:
        try:
            digest.update(named.read_bytes())
        except OSError:
            digest.update(b"\0missing\0")
    return digest.hexdigest()[:12]


def _named(folder: Path, spec: ProviderSpec) -> list[Path]:
    wire = spec.wire
    files = [
        t.file for t in (wire.request, wire.response, wire.stream) if isinstance(t, TemplateFile)
    ]
    if spec.env_file:
        files.append(spec.env_file)
    return [folder / name for name in files]
