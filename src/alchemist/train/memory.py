"""A training job's memory: the limit it runs under, and what running out of it looks like.

`apply_limit(mb)` sets RLIMIT_DATA (heap and anonymous mappings; memory-mapped split files are
not counted: the kernel can drop their pages) from the job's `resources.train.mem_mb`: an allocation past it then fails inside the
process — numpy's MemoryError, torch's "can't allocate memory" — where the pack can be retried
as smaller packs or end with one clear line, instead of the kernel's out-of-memory killer ending
the job (exit 137, an empty log). The data segment also holds memory the allocator keeps after
freeing it, so the limit caps the peak resident memory from above. On CUDA, torch raises
torch.OutOfMemoryError for the card's memory.
"""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

OUT_OF_MEMORY = "out of memory"
_configured_mb: float | None = None
CODE_HEADROOM_MB = 128   # library code paged in while training (torch's grows ~75 -> ~155 MB here)


def apply_limit(mb: float | None) -> None:
    """Cap this process so its resident memory stays within `mb` MiB (None: no cap): the data
    segment gets `mb` less the libraries' code pages resident now and CODE_HEADROOM_MB for those
    paged in later (file-backed pages: RLIMIT_DATA does not count them, the resident size does).
    Call it after torch is imported, before data is loaded. pyarrow's default allocator
    (mimalloc) reserves GBs of address space it never touches, which the cap would count:
    `alchemist` sets ARROW_DEFAULT_MEMORY_POOL=system before any import (alchemist.cli)."""
    global _configured_mb
    if not mb:
        return
    _configured_mb = float(mb)
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    cap = max(float(mb) - _status_mb("RssFile") - CODE_HEADROOM_MB, float(mb) / 4)
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = int(cap * 2 ** 20)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (want, hard))


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def current_limit_mb() -> float | None:
    """The memory this process was given (apply_limit's `mb`), else its RLIMIT_DATA, else None."""
    if _configured_mb:
        return _configured_mb
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    return None if soft == resource.RLIM_INFINITY else soft >> 20


def is_out_of_memory(err: BaseException) -> bool:
    """A failed allocation: host (MemoryError, torch's CPU allocator) or device (CUDA)."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def resident_mb() -> float:
    """This process's resident memory now (MB; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return 0.0
