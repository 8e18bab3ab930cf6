"""Atomic file writes: a crash or a full disk mid-write leaves the previous file intact.

The content goes to a temporary file in the target's folder, is flushed and fsynced, then moved into
place with ``os.replace``; on any failure the temporary file is removed and the error re-raised.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` (and its parent folders) with what ``write`` puts in a binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would give, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str | None = None) -> Path:
    """:func:`atomic_write` of ``text``, encoded as ``open(path, "w", encoding=encoding)`` would."""

    def write(f: BinaryIO) -> None:
        wrapper = io.TextIOWrapper(f, encoding=encoding)
        wrapper.write(text)
        wrapper.flush()
        wrapper.detach()  # leave ``f`` open for the fsync

    return atomic_write(path, write)


@contextlib.contextmanager
def signals_deferred(*signals: int) -> Iterator[None]:
    """Run the Python handlers of ``signals`` that arrive during the block only after it (e.g. SIGCHLD, through which
    torch's DataLoader raises in the main thread, at any point, when a worker dies), so that a write is finished
    first. The handlers are swapped, not the signal mask: a process-directed signal may land on any thread, and
    Python runs its handler in the main thread whatever the main thread's mask. Main thread only (a no-op
    elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict = {}
    try:
        for sig in signals:
            if signal.getsignal(sig) is None:  # a handler installed from C: left alone
                continue
            previous[sig] = signal.signal(sig, lambda signum, frame: arrived.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)  # what it would have done during the block
