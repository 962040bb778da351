"""`serve --workers N`: N processes serve every port, the kernel spreading the connections.

The parent serves nothing. It starts N workers, each `multiport serve` with the same
arguments and `MULTIPORT_WORKER` set to its index, and watches them:

- each worker binds every port itself with SO_REUSEPORT (`server.listen`), so a port its
  own reload opens is shared too, and Linux spreads new connections over the sockets;
- worker 0 fetches the catalogs; the others read what it saves in the disk cache
  (`catalog.Catalog.run`), so N workers ask the upstream once, not N times;
- SIGTERM or SIGINT to the parent goes to every worker, which shuts down as one process
  does; the parent exits 0 once all are gone. SIGHUP goes to every worker (each also
  watches the folder itself);
- a worker that dies is started again, after a back-off that grows while it keeps dying.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

__all__ = [
    "WORKER_ENV",
    "Supervisor",
    "as_worker",
    "count",
    "probe",
    "supervise",
    "unsupported",
    "worker_index",
]

log = logging.getLogger("multiport")

WORKER_ENV = "MULTIPORT_WORKER"
_PARENT_ENV = "MULTIPORT_PARENT"
_TICK = 0.1  # seconds between two looks at the workers
_BACK_OFF = (0.5, 30.0)  # first and longest wait before starting a dead worker again
_STEADY = 10.0  # a worker that lived this long starts again after the shortest wait
_STRAGGLE = 10.0  # seconds past the shutdown deadline before a worker is killed


def worker_index() -> int | None:
    """This process's worker index under `serve --workers`; None in a lone process."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value and value.isdigit() else None


def count(text: str) -> int:
    """`--workers`: a number from 1, or `auto` for one per core this process may use."""
    if text == "auto":
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return len(cores) if cores else os.cpu_count() or 1
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1 or `auto`, got {text!r}")
    return number


def unsupported() -> str | None:
    """Why this system cannot run several workers, or None."""
    if sys.platform == "win32" or not hasattr(socket, "SO_REUSEPORT"):
        return (
            f"--workers above 1 needs SO_REUSEPORT and fork-like processes, which {sys.platform} "
            "lacks; serve with one worker (the default) or run one gateway per machine"
        )
    return None


def probe(addresses: Sequence[tuple[str, str, int]], *, strict: bool) -> str | None:
    """Why the workers could not serve these (name, host, port), or None.

    Each port is bound and let go at once, as a worker will bind it: one held by another
    process (without SO_REUSEPORT) fails. As in one process, a taken port stops the start
    with `strict`, or when no port is free; otherwise the workers leave it out.
    """
    taken = []
    for name, host, port in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                taken.append(f"{name}: cannot listen on {host}:{port} ({exc.strerror})")
    if taken and (strict or len(taken) == len(addresses)):
        return "; ".join(taken) + ". Stop what uses the port, or change `port:` in the file."
    return None


def as_worker() -> None:
    """In a worker, first thing: end with SIGTERM when the parent dies (Linux), so none
    outlives it; ignore SIGHUP until the reload takes it over (the parent passes it on)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parent = os.environ.get(_PARENT_ENV)
    if sys.platform != "linux" or not parent:
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != parent:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(
    words: Sequence[str],
    workers: int,
    grace: float,
    addresses: Sequence[tuple[str, str, int]],
    *,
    strict: bool,
) -> int:
    """Serve with `workers` processes (`words`: the command line); the exit status."""
    why = unsupported()
    if why is not None:
        print(f"multiport: {why}", file=sys.stderr)
        return 2
    taken = probe(addresses, strict=strict)
    if taken is not None:
        print(f"multiport: {taken}", file=sys.stderr)
        return 1
    return Supervisor(words, workers, grace).run()


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    due: float = 0.0  # when a dead worker starts again


class Supervisor:
    """Run `multiport <words>` as `workers` processes until SIGTERM or SIGINT."""

    def __init__(self, words: Sequence[str], workers: int, grace: float) -> None:
        self.command = [sys.executable, "-m", "multiport", *words]
        self.workers = [_Worker(i) for i in range(workers)]
        self.grace = grace
        self.signalled: int | None = None

    def run(self) -> int:
        """Start every worker, keep them running, stop them all on a signal; exit status."""
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for worker in self.workers:
                self._start(worker)
            while self.signalled is None:
                self._tend()
                time.sleep(_TICK)
            return self._stop(self.signalled)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)  # each worker reloads the folder
        elif self.signalled is None:
            self.signalled = signum

    def _send(self, sig: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    def _start(self, worker: _Worker) -> None:
        env = {**os.environ, WORKER_ENV: str(worker.index), _PARENT_ENV: str(os.getpid())}
        worker.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL)
        worker.started = time.monotonic()
        log.warning("multiport: worker %d started (pid %d)", worker.index, worker.process.pid)

    def _tend(self) -> None:
        """Note the workers that died, and start again those whose back-off is over."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None:
                if now >= worker.due:
                    self._start(worker)
                continue
            status = worker.process.poll()
            if status is None:
                continue
            lived = now - worker.started
            worker.failures = 0 if lived >= _STEADY else worker.failures + 1
            wait = min(_BACK_OFF[0] * 2**worker.failures, _BACK_OFF[1])
            log.error(
                "multiport: worker %d (pid %d) exited (%s) after %.1f s; starting it again in %g s",
                worker.index,
                worker.process.pid,
                _status(status),
                lived,
                wait,
            )
            worker.process, worker.due = None, now + wait

    def _stop(self, sig: int) -> int:
        """Pass `sig` to every worker and wait for all; 1 when one had to be killed."""
        log.warning("multiport: stopping %d worker(s)", len(self.workers))
        self._send(sig)
        deadline = time.monotonic() + self.grace + _STRAGGLE
        status = 0
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                log.error(
                    "multiport: worker %d (pid %d) did not stop; killed",
                    worker.index,
                    worker.process.pid,
                )
                worker.process.kill()
                worker.process.wait()
                status = 1
        return status


def _status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
