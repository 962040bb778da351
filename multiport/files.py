"""Files read at load time, safely: regular files only, bounded, never waited on.

A provider file may name other files (template files, an `env_file`); those must stay
inside the folder that holds it. A message about a file says where it is and what is
wrong with it, never what it holds: the file may be a secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "FileRefused", "inside_folder", "read_text"]

# Provider files, template files and env files are hand-written: far below this.
MAX_FILE_BYTES = 1 << 20

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class FileRefused(ValueError):
    """A file that cannot be read, or may not be: the message says why, not what it holds."""


def inside_folder(folder: Path, name: str) -> Path:
    """`name` relative to `folder`, `..` and symlinks resolved; refused outside the folder."""
    base = folder.resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise FileRefused(
            f"is outside {base}: a file named by a provider file must be inside the "
            "folder that holds it, or below it"
        )
    return target


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes."""
    try:
        # Checked before opening: opening a device or a FIFO can block or act.
        _check(os.stat(path), limit)
        # O_NONBLOCK: a FIFO swapped in after the check opens at once and is refused below.
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise FileRefused(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        _check(os.fstat(fd), limit)
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise FileRefused(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused(_too_large(limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The error's own text shows the bad byte: say where it is instead.
        raise FileRefused(f"is not UTF-8 text (byte {exc.start} of the file)") from None


def _check(status: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise FileRefused("is not a regular file")
    if status.st_size > limit:
        raise FileRefused(_too_large(limit))


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"is larger than {limit:,} bytes, the most a file read at load time may hold"
