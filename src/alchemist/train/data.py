"""Prepared data (docs/architecture.md, `results/data/`) as tensors on the training device.

Tables go to the device once, as whole tensors; batches are index gathers, never DataLoader
workers. Training refuses the test split (PB-1, PB-32): a file whose sha256 equals
`prep.json["splits"]["test"]["file_sha256"]` raises a UserError, whatever its name.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alchemist.errors import UserError
from alchemist.data.guard import (prep_wrote, refuse_near_rows, refuse_test_matrix, refuse_test_rows,
                                   refuse_test_split)
from alchemist.data.split_files import read_split, split_path


@dataclass
class Split:
    X: torch.Tensor          # (N, F) float32
    y: torch.Tensor          # (N,) int64 (classification) or float32 (regression)


@dataclass
class Manifest:
    """What training needs of `prep.json`."""
    task: str                # regression | binary | multiclass
    n_classes: int           # 1 for regression and binary (one class column), else the classes
    features: list[str]
    image_shape: list[int] | None
    manifest: dict = field(repr=False)
    metric: str | None = None       # the selection metric prep chose (data.metric)

    def class_weights(self) -> list[float] | None:
        """prep's per-class weights (`rebalance.class_weights`, one per class), or None when it has none."""
        return (self.manifest.get("rebalance") or {}).get("class_weights")

    def rebalance_method(self) -> str:
        """prep's rebalancing: `none`, `class_weight` or `oversample` (`none` when prep.json has no plan)."""
        return (self.manifest.get("rebalance") or {}).get("method", "none")


def read_manifest(data_dir: str | Path) -> Manifest:
    """`<data_dir>/prep.json` as a Manifest; a UserError when prep has not run there."""
    path = Path(data_dir) / "prep.json"
    if not path.exists():
        raise UserError(f"{path} not found: run `alchemist prep` first")
    m = json.loads(path.read_text())
    return Manifest(task=m["task"], n_classes=int(m.get("n_classes", 1)),
                    features=list(m["features"]), image_shape=m.get("image_shape"), manifest=m,
                    metric=(m.get("metric") or {}).get("name"))


def load_split(data_dir: str | Path, name: str, prep: Manifest,
               device: torch.device | str = "cpu") -> Split:
    """A prepared split (alchemist.data.split_files) as tensors on `device`: features in the
    manifest's order, float32. An array source's split stays memory-mapped on the CPU (rows are
    read as batches draw them; `to_device` moves each batch to a GPU), so it may exceed memory;
    on a GPU it is copied there whole when it fits (fits_on)."""
    path = split_path(data_dir, name, prep.manifest)
    if not path.exists():
        raise UserError(f"{path} not found")
    if name == "test":
        raise UserError(f"training refuses test data ({path}); only the lockbox reads it (PB-32)")
    refuse_test_split(path, prep.manifest, "training", Path(data_dir))
    X, y, _ = read_split(data_dir, name, prep.manifest, prep.features)
    if prep.manifest.get("format") == "npz":
        refuse_test_matrix(X, Path(data_dir), "training", str(path), eval_rows(X.shape[1]))
    else:
        import pandas as pd

        refuse_test_rows(pd.DataFrame(X, columns=prep.features, copy=False), prep.features,
                         "encoded", Path(data_dir), "training", str(path))
    if not prep_wrote(path, name, prep.manifest):       # noisy or edited copies of test rows too
        refuse_near_rows(X, Path(data_dir), prep.manifest, "training", str(path))
    if isinstance(X, np.memmap) and not fits_on(torch.device(device), X.nbytes):
        return Split(host_tensor(X), target_tensor(y, prep.task).to(device))
    return Split(host_tensor(X).to(device), target_tensor(y, prep.task).to(device))


def fits_on(device: torch.device, nbytes: int) -> bool:
    """A mapped split goes to a GPU whole when it takes under a quarter of its free memory;
    on the CPU it stays mapped (the page cache holds what is used)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < free / 4


def host_tensor(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor over `a`: a read-only memory map is shared, never copied."""
    with warnings.catch_warnings():      # a read-only map: torch warns it may not be written
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)


def target_tensor(y: np.ndarray, task: str) -> torch.Tensor:
    """Targets as a CPU tensor (N,): float32 for regression, int64 class ids otherwise."""
    return torch.from_numpy(np.array(y, dtype="float32" if task == "regression" else "int64"))


def eval_rows(width: int) -> int:
    """Rows per evaluation/scan block: at most 4096, and about 16 MB of float32 a block."""
    return int(max(64, min(4096, (1 << 22) // max(width, 1))))


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """x on `device`; asynchronous only towards a GPU (a non-blocking copy to the host may be
    read before it lands)."""
    return x if x.device == device else x.to(device, non_blocking=device.type == "cuda")


def augment(x: torch.Tensor, trials: list[dict], gens, image_shape) -> torch.Tensor:
    """PB-5 image augmentation of a (K, B, F) batch: random shifts (zero padded), horizontal flips,
    small rotations, Gaussian noise; each trial draws from its own generator with its own
    settings (a setting at 0 draws nothing)."""
    K, B, _ = x.shape
    c, h, w = image_shape
    dev = x.device
    out = []
    for k, (cfg, gen) in enumerate(zip(trials, gens)):
        xi = x[k].reshape(B, c, h, w)
        s = int(cfg["aug_shift"])
        if s > 0:
            padded = torch.nn.functional.pad(xi, (s, s, s, s))
            dy = torch.randint(0, 2 * s + 1, (B, 1), generator=gen, device=dev)
            dx = torch.randint(0, 2 * s + 1, (B, 1), generator=gen, device=dev)
            rows = (dy + torch.arange(h, device=dev))[:, None, :, None]
            cols = (dx + torch.arange(w, device=dev))[:, None, None, :]
            xi = padded[torch.arange(B, device=dev)[:, None, None, None],
                        torch.arange(c, device=dev)[None, :, None, None], rows, cols]
        if cfg["aug_flip"]:
            flip = torch.rand(B, generator=gen, device=dev) < 0.5
            xi = torch.where(flip[:, None, None, None], xi.flip(-1), xi)
        if cfg["aug_rotate"] > 0:       # small rotations about the centre, bilinear, zero fill
            angle = (torch.rand(B, generator=gen, device=dev) * 2 - 1) * math.radians(cfg["aug_rotate"])
            cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
            theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1),     # in pixels, not in
                                 torch.stack([sin * w / h, cos, zero], 1)], 1)   # [-1, 1]² (no shear)
            grid = F.affine_grid(theta, list(xi.shape), align_corners=False)
            xi = F.grid_sample(xi, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if cfg["aug_noise"] > 0:
            xi = xi + cfg["aug_noise"] * torch.randn(xi.shape, generator=gen, device=dev)
        out.append(xi.reshape(B, -1))
    return torch.stack(out)


ALIGN = 4                  # rows per batch block are kept a multiple of this (see batch_spans)


def batch_spans(n: int, batch: int) -> list[tuple[int, int]]:
    """Row ranges of an epoch's mini-batches. The last one is cut to a multiple of ALIGN rows
    (its up to 3 rows left out differ every epoch): CPU BLAS picks its kernel by the 16-byte
    alignment of each trial's block in a batched matmul, and a trial's sums must not depend on
    where it sits in the pack. (Batch sizes that are multiples of 4 keep every batch aligned.)"""
    spans = [(s, min(s + batch, n)) for s in range(0, n, batch)]
    s, e = spans[-1]
    if e - s < batch:
        spans[-1] = (s, s + (e - s) // ALIGN * ALIGN)
    return [(s, e) for s, e in spans if e - s >= 2]      # batch norm needs 2 rows
