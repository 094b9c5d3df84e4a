"""Small I/O helpers every layer shares: the one atomic writer (``atomic_write`` and its text,
``torch.save`` and ``np.savez`` forms), an exclusive file lock, device picking and the default
cache folder. No project imports."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch


def atomic_write(path: Path, write: Callable[[Path], Any], *, shared: bool = False) -> None:
    """``write(tmp)`` then rename onto ``path``: a reader never sees a half-written file.

    The temporary file sits beside ``path`` as ``<name>.tmp``; ``shared``: ``<name>.<pid>.tmp``,
    for files that several processes may write at once (the caches of reference statistics and
    extractors), so that no two writers share a temporary file. A write that fails (a full disk,
    Ctrl-C) removes its temporary file and leaves ``path`` as it was; an ``OSError`` is raised
    again naming ``path`` (same errno, so ``ENOSPC`` stays ``ENOSPC``). Only a process killed
    outright leaves a temporary file, which the next write replaces.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp" if shared else f"{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            text = f"cannot write {path}: {e.strerror or e}"
            raise (OSError(e.errno, text) if e.errno else OSError(text)) from e
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_save(obj: Any, path: Path, *, shared: bool = False) -> None:
    """``torch.save`` atomically (checkpoints; ``shared``: see ``atomic_write``)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp), shared=shared)


def atomic_savez(path: Path, *, shared: bool = False, **arrays: Any) -> None:
    """``np.savez(path, **arrays)`` atomically (``shared``: see ``atomic_write``). NumPy writes
    into an open file, so it appends no ``.npz`` to the temporary name."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write, shared=shared)


class LockBusy(RuntimeError):
    """The lock is held by another process (non-blocking ``file_lock``)."""


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, holder: str = "") -> Iterator[TextIO | None]:
    """An exclusive ``flock`` on ``path`` (released by the OS if the process dies).

    ``blocking=False`` raises ``LockBusy`` (its message: what the holder wrote into the file)
    when another process holds it; ``holder`` is then written into the file for the next one
    to read. On a filesystem without flock (some network mounts) it yields ``None``, unlocked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                yield None
                return
            f.seek(0)
            raise LockBusy(f.read().strip() or "another process") from e
        if holder:
            f.seek(0)
            f.truncate()
            f.write(holder)
            f.flush()
        try:
            yield f
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pick_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def upload(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host tensor goes to a GPU through pinned memory, asynchronously
    (a copy from pageable memory would make the host wait for the GPU)."""
    if device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def default_cache_dir() -> Path:
    """Reference statistics, extractor weights and encoded latents: ~/.cache/timestep-bench."""
    return Path.home() / ".cache" / "timestep-bench"
