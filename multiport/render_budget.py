"""A time and size budget for each template render, kept by one watchdog thread.

Every port shares one event loop, and a template's loop is plain Python that asyncio cannot
interrupt. So each render records its deadline in a slot of its thread; a watchdog thread
polls the slots and, when a render overruns, raises `RenderOverrun` inside that thread with
`PyThreadState_SetAsyncExc`. A lock orders the watchdog's raise against the render's end, and
the end clears an exception still pending, so it never lands outside the render.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["RenderLimitError", "RenderOverrun", "byte_limit", "run_bounded"]

T = TypeVar("T")

_POLL_SECONDS = 0.05
_SET_ASYNC_EXC = ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
_raise_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(_SET_ASYNC_EXC)
# The same call with NULL clears what is pending.
_clear_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(_SET_ASYNC_EXC)


class RenderOverrun(BaseException):
    """Raised in a render that ran past its deadline.

    A BaseException, so that no `except Exception` in a filter can swallow it.
    """


class RenderLimitError(Exception):
    """A render was about to build more than `limits.render_bytes` allows."""


class _Slot:
    """One thread's render in progress: its deadline (0 when none) and its byte limit."""

    __slots__ = ("deadline", "fired", "limit", "thread_id")

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.deadline = 0.0
        self.limit = 0
        self.fired = False


_local = threading.local()
_lock = threading.Lock()
_slots: list[_Slot] = []
_watchdog: list[threading.Thread] = []


def _watch() -> None:
    while True:
        time.sleep(_POLL_SECONDS)
        now = time.monotonic()
        with _lock:
            for slot in _slots:
                if slot.deadline and now > slot.deadline and not slot.fired:
                    slot.fired = True
                    _raise_in(slot.thread_id, RenderOverrun)


def _new_slot() -> _Slot:
    slot = _Slot(threading.get_ident())
    with _lock:
        _slots[:] = [s for s in _slots if s.thread_id != slot.thread_id]
        _slots.append(slot)
        if not _watchdog:
            thread = threading.Thread(target=_watch, name="multiport-render-watchdog", daemon=True)
            thread.start()
            _watchdog.append(thread)
    _local.slot = slot
    return slot


def byte_limit() -> int:
    """The running render's `render_bytes`; outside a render (compile time) nothing is allowed,
    so Jinja's optimizer leaves a bounded operation to run time instead of folding it."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None or not slot.deadline:
        raise RenderLimitError("not evaluated at compile time")
    return slot.limit


def _end(slot: _Slot) -> None:
    with _lock:
        slot.deadline = 0.0
        fired, slot.fired = slot.fired, False
        if fired:
            # The watchdog may have raised just as the render ended: drop what is pending.
            _clear_in(slot.thread_id, None)


def run_bounded(render: Callable[[], T], seconds: float, limit: int) -> T:
    """`render()`, stopped with `RenderOverrun` after `seconds`; `byte_limit()` is `limit`."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None:
        slot = _new_slot()
    elif slot.deadline:
        return render()  # nested in a render already bounded
    slot.limit = limit
    slot.deadline = time.monotonic() + seconds
    try:
        return render()
    finally:
        if _finish(slot):
            raise RenderOverrun  # the watchdog fired as the render ended


def _finish(slot: _Slot) -> bool:
    """End the slot's render; True if its overrun was raised here, past the render."""
    late = False
    while True:
        try:
            _end(slot)
            return late
        except RenderOverrun:
            # Raised at the edge of the render, before its end was recorded; once only,
            # since the watchdog fires once per render.
            late = True
