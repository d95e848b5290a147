"""Prepared data (docs/architecture.md, `results/data/`) as tensors on the training device.

Tables go to the device once, as whole tensors; batches are index gathers, never DataLoader
workers. Training refuses the test split (PB-1, PB-32): a file whose sha256 equals
`prep.json["splits"]["test"]["file_sha256"]` raises a UserError, whatever its name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alchemist.errors import UserError
from alchemist.data.guard import refuse_test_rows, refuse_test_split


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
        return (self.manifest.get("rebalance") or {}).get("class_weights")

    def rebalance_method(self) -> str:
        return (self.manifest.get("rebalance") or {}).get("method", "none")


def read_manifest(data_dir: str | Path) -> Manifest:
    path = Path(data_dir) / "prep.json"
    if not path.exists():
        raise UserError(f"{path} not found: run `alchemist prep` first")
    m = json.loads(path.read_text())
    return Manifest(task=m["task"], n_classes=int(m.get("n_classes", 1)),
                    features=list(m["features"]), image_shape=m.get("image_shape"), manifest=m,
                    metric=(m.get("metric") or {}).get("name"))


def load_split(data_dir: str | Path, name: str, prep: Manifest,
               device: torch.device | str = "cpu") -> Split:
    """Read `<data_dir>/<name>.parquet` into device tensors (features in manifest order)."""
    path = Path(data_dir) / f"{name}.parquet"
    if not path.exists():
        raise UserError(f"{path} not found")
    if name == "test":
        raise UserError(f"training refuses test data ({path}); only the lockbox reads it (PB-32)")
    refuse_test_split(path, prep.manifest, "training", Path(data_dir))
    frame = pd.read_parquet(path)
    missing = [c for c in [*prep.features, "_y"] if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {missing[:5]}")
    refuse_test_rows(frame, prep.features, "encoded", Path(data_dir), "training", str(path))
    X, y = frame_tensors(frame, prep)
    return Split(X.to(device), y.to(device))


def frame_tensors(frame: pd.DataFrame, prep: Manifest) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) float32, row-major, and the target. pandas hands a block of columns over
    column-major: gathering mini-batch rows from that is ~7x slower (each row is F strided reads)."""
    X = torch.from_numpy(np.ascontiguousarray(frame[prep.features].to_numpy("float32")))
    y_dtype = "float32" if prep.task == "regression" else "int64"
    return X, torch.from_numpy(frame["_y"].to_numpy(y_dtype, copy=True))


def augment(x: torch.Tensor, trials: list[dict], gens, image_shape) -> torch.Tensor:
    """PB-5 image augmentation of a (K, B, F) batch: random shifts (zero padded), horizontal flips,
    Gaussian noise; each trial draws from its own generator with its own settings."""
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
        if cfg["aug_noise"] > 0:
            xi = xi + cfg["aug_noise"] * torch.randn(xi.shape, generator=gen, device=dev)
        out.append(xi.reshape(B, -1))
    return torch.stack(out)
