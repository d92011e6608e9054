"""Files shared between processes: published whole or not at all, and locked while one process works.

Sweep workers, DDP ranks and parallel runs write the same caches and stores at the same time; every
writer in nestbench goes through these two pieces so that none can see a torn file or double work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", *, permissions: int | None = None) -> Iterator[IO]:
    """Write through a file object; ``path`` is then either absent, the old file, or complete.

    Each writer has its own temporary file in the same folder (same file system, so ``os.replace`` is
    an atomic rename): concurrent writers each publish a whole file and the last rename wins. A killed
    writer leaves only a ``.*.tmp`` file, which no reader opens. The published file has the mode an
    ordinary ``open(path, "w")`` gives (0666 less the umask; ``mkstemp``'s 0600 would hide it from
    colleagues on shared storage) unless ``permissions`` says otherwise.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # O_EXCL: never another writer's file
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """``atomic_write`` for a small text file (manifests, ``meta.json``, indexes)."""
    with atomic_write(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def file_lock(path: str | Path, stop: threading.Event | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), released when the block ends or the
    process dies. With ``stop``, wait by polling and give up waiting once ``stop`` is set."""
    with open(path, "a") as f:
        if stop is None:
            fcntl.flock(f, fcntl.LOCK_EX)
        else:
            while not stop.is_set():
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
