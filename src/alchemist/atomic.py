"""Atomic file writes, the one place for them: write a temporary file beside the target, then
os.replace it. A reader, a crash or a SIGKILL sees the old file or the new one, never half of
one; a failed write leaves the old file and no temporary debris.

    with replacing(path) as tmp:          # any writer: frame.to_parquet(tmp), torch.save(obj, tmp)
        ...
    write_text(path, text)
    write_json(path, obj)                 # sorted keys, one trailing newline
    with file_lock(path):                 # processes that must not interleave
        ...
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path`.
    fsync=True flushes it to disk first (checkpoints: survive a node crash, not only a kill).
    The name is unique per writer, and the file gets the umask's permissions (not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock (flock) held for the block; serialises processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # closing the file releases the lock, even on errors
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` atomically: a reader sees the old file or the new one, never part of one."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def dumps(obj: Any, allow_nan: bool = True) -> str:
    """Deterministic, human-readable JSON: sorted keys, one trailing newline; values JSON does
    not know (paths, numpy scalars) as their str(). `allow_nan=False` refuses NaN/inf."""
    return json.dumps(obj, sort_keys=True, indent=1, allow_nan=allow_nan, default=str) + "\n"


def write_json(path: str | os.PathLike, obj: Any, allow_nan: bool = True) -> None:
    """Replace `path` atomically with `obj` as deterministic JSON (`dumps`); allow_nan=False refuses NaN."""
    write_text(path, dumps(obj, allow_nan))
