"""GPU slots on one multi-GPU machine without SLURM.

`snakemake --cores N --resources gpu=G` caps how many GPU jobs run at once but never says which
GPU each gets, so every training job would land on cuda:0. A training process therefore takes a
slot first: an exclusive `fcntl.flock` on `<lock_dir>/gpu<ID>.<slot>.lock`, held for the process's
lifetime (the OS releases it on exit, crash or SIGKILL: nothing to clean up), then sets
`CUDA_VISIBLE_DEVICES=<ID>` before torch initialises CUDA. Each device has `share` slots (default
1: one pack per GPU); slot 0 of every device is tried before slot 1 of any, so jobs spread over
the GPUs before they share one. When every slot is busy the process waits, bounded.

Devices: `$ALCHEMIST_GPUS` (comma list of ids, e.g. "0,1,2,3"; also how tests pretend GPUs),
else `$CUDA_VISIBLE_DEVICES` when set, else the devices torch sees (counted in a subprocess: a
count in this process would initialise CUDA and freeze the visible set), else none (no-op).
Under SLURM (`$SLURM_JOB_ID` with `$CUDA_VISIBLE_DEVICES` set) nothing is done: SLURM has
already isolated the job's GPU. No torch import at module level.
"""
from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from alchemist.errors import UserError

DEFAULT_LOCK_DIR = "/tmp/alchemist-gpu-locks"
DEFAULT_WAIT_S = 3600.0
_held: list["GpuSlot"] = []      # keeps the lock files open for the process's lifetime


@dataclass
class GpuSlot:
    device: str          # the id as listed (what CUDA_VISIBLE_DEVICES is set to)
    slot: int
    path: Path
    fd: int

    def release(self) -> None:
        """Give the slot back early (normally the OS does it when the process ends)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self in _held:
            _held.remove(self)


def _ids(text: str) -> list[str]:
    return [d.strip() for d in text.split(",") if d.strip() and d.strip() != "-1"]


def visible_devices() -> list[str]:
    """The GPU ids slots are handed out over (empty: no GPU)."""
    if os.environ.get("ALCHEMIST_GPUS") is not None:
        return _ids(os.environ["ALCHEMIST_GPUS"])
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return _ids(os.environ["CUDA_VISIBLE_DEVICES"])
    try:
        import torch
    except ImportError:
        return []
    if torch.version.cuda is None:           # a CPU build of torch: no subprocess needed
        return []
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                           capture_output=True, text=True, timeout=120)
    n = int(probe.stdout.strip() or 0) if probe.returncode == 0 else 0
    return [str(i) for i in range(n)]


def under_slurm() -> bool:
    """True inside a SLURM job that set CUDA_VISIBLE_DEVICES: SLURM has already chosen the GPU."""
    return bool(os.environ.get("SLURM_JOB_ID")) and os.environ.get("CUDA_VISIBLE_DEVICES") is not None


def _lock_dir(lock_dir) -> Path:
    path = Path(lock_dir or os.environ.get("ALCHEMIST_GPU_LOCK_DIR") or DEFAULT_LOCK_DIR)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        try:                                  # shared by every user of the machine
            path.chmod(0o1777)
        except OSError:
            pass
    return path


def _safe(device: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in device)


def _try(path: Path, label: str) -> int | None:
    """The open, exclusively flock-ed lock file, or None when another process holds it."""
    try:
        fd, writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
    except PermissionError:                   # another user's file: locking needs no write access
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if writable:                              # who holds it, for the waiting message
        try:
            os.fchmod(fd, 0o666)              # other users of the machine take slots too
        except OSError:
            pass
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}: {label}\n".encode())
    return fd


def _holders(paths: list[Path]) -> str:
    out = []
    for p in paths:
        try:
            out.append(f"{p.name} ({p.read_text().strip() or '?'})")
        except OSError:
            out.append(p.name)
    return "; ".join(out)


def acquire(share: int | None = None, lock_dir=None, wait_s: float | None = None, poll_s: float = 1.0,
            label: str = "", log=lambda msg: print(msg, file=sys.stderr)) -> GpuSlot | None:
    """Take a free GPU slot and set CUDA_VISIBLE_DEVICES to its device; None when there is no GPU
    or SLURM already chose one. Raises UserError after waiting `wait_s` (default
    $ALCHEMIST_GPU_WAIT or 3600 s) with every slot busy."""
    if under_slurm():
        return None
    devices = visible_devices()
    if not devices:
        return None
    share = int(share or os.environ.get("ALCHEMIST_GPU_SHARE") or 1)
    if share < 1:
        raise UserError(f"GPU share must be >= 1, got {share}")
    wait_s = float(wait_s if wait_s is not None else os.environ.get("ALCHEMIST_GPU_WAIT") or DEFAULT_WAIT_S)
    root = _lock_dir(lock_dir)
    order = [(s, d) for s in range(share) for d in devices]       # spread before sharing
    paths = {(s, d): root / f"gpu{_safe(d)}.{s}.lock" for s, d in order}
    deadline, told = time.monotonic() + wait_s, False
    while True:
        for s, d in order:
            fd = _try(paths[s, d], label)
            if fd is not None:
                slot = GpuSlot(d, s, paths[s, d], fd)
                _held.append(slot)
                os.environ["CUDA_VISIBLE_DEVICES"] = d
                if told:
                    log(f"alchemist: GPU slot {paths[s, d].name} is free now; using GPU {d}")
                return slot
        if time.monotonic() >= deadline:
            raise UserError(
                f"no GPU slot became free within {wait_s:g} s ({len(order)} slots = {len(devices)} GPU(s) "
                f"x share {share} in {root}, held by: {_holders(list(paths.values()))}). Run fewer GPU jobs "
                f"(snakemake --resources gpu=<GPUs x share>), share GPUs (--gpu-share / ALCHEMIST_GPU_SHARE) "
                f"or wait longer (ALCHEMIST_GPU_WAIT seconds)")
        if not told:
            log(f"alchemist: all {len(order)} GPU slots are busy ({len(devices)} GPU(s) x share {share}, "
                f"{root}); waiting up to {wait_s:g} s. Held by: {_holders(list(paths.values()))}")
            told = True
        time.sleep(poll_s)
