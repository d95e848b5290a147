"""The prep stage for array sources (alchemist.data.arrays): the same splits, statistics and
manifest as for tables (alchemist.data.prep), computed block by block so that no split is ever
held in memory. `prepare(cfg)` checks everything and fits the train statistics (reading every
row once); `write(out_dir)` streams the normalised splits to `<split>.npz`, then the manifest.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.atomic import replacing
from alchemist.data.arrays import ArraySource, Moments, blocks, layout, load, normalise
from alchemist.data import manifest
from alchemist.data.encode import pixel_columns, token_columns
from alchemist.data.guard import FINGERPRINTS, matrix_row_hashes
from alchemist.data.near_rows import near_index
from alchemist.data.split import check_target, coarse_subsample, detect_task, split_rows
from alchemist.data.split_files import NpzWriter, open_member
from alchemist.errors import UserError

TOKEN_LIMIT = 1 << 24        # ids travel as float32: exact up to 2**24


class ArrayPrep:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.src: ArraySource = load(cfg)
        y = pd.Series(self.src.y)
        self.task = detect_task(y, cfg.get("task", "auto"), "target")
        check_target(y, self.task, "target")
        pos = split_rows(y, task=self.task, seed=cfg["seed"], stratify=cfg.get("stratify", True),
                         test_fraction=cfg["test_fraction"], val_fraction=cfg["val_fraction"],
                         source=cfg["source"])
        coarse = cfg.get("coarse") or {}
        keep = coarse_subsample(y.iloc[pos["train"]].reset_index(drop=True),
                                fraction=coarse.get("fraction"), rows=coarse.get("rows"),
                                classes=coarse.get("classes"), task=self.task, seed=cfg["seed"])
        self.pos = {**pos, "train_coarse": pos["train"][keep]}
        self.classes = sorted(y.unique().tolist(), key=str) if self.task != "regression" else []
        self.image_shape, groups, self.per = layout(self.src)
        self.method = "none" if self.src.kind == "tokens" else cfg.get("normalise", "zscore")
        self.shift, self.scale, self.vocab = self._scan(groups)

    def _scan(self, groups: int):
        """One pass over every row: finite values, the vocabulary, the train statistics."""
        width = int(np.prod(self.src.X.shape[1:]))
        in_train = np.zeros(len(self.src.y), dtype=bool)
        in_train[self.pos["train"]] = True
        stats, top = Moments(groups), 0
        for s, e in blocks(len(self.src.y), width):
            block = self.src.rows(np.arange(s, e))
            bad = ~np.isfinite(block)
            if bad.any():
                row = s + int(np.flatnonzero(bad.any(1))[0])
                raise UserError(f"data.source: {int(bad.sum())} non-finite input value(s) in rows "
                                f"{s}..{e - 1} (first in row {row}); an array source must be finite")
            if self.src.kind == "tokens":
                if block.min() < 0:
                    raise UserError(f"data.source: negative token id in rows {s}..{e - 1}")
                top = max(top, int(block.max()))
            else:
                stats.add(block[in_train[s:e]].reshape(-1, groups, self.per))
        if top >= TOKEN_LIMIT:
            raise UserError(f"data.source: token id {top} is beyond the supported vocabulary ({TOKEN_LIMIT})")
        shift, scale = stats.shift_scale(self.method)
        return shift, scale, top + 1

    # ------------------------------------------------------------------ the manifest
    def feature_names(self) -> list[str]:
        """The feature column names: one per pixel (c{i}_{y}_{x}), per token position, else x0, x1 …."""
        shape = self.image_shape
        if shape:
            return pixel_columns(shape)
        width = self.src.X.shape[1]
        return token_columns(width) if self.src.kind == "tokens" else [f"x{i}" for i in range(width)]

    def encode_target(self, positions: np.ndarray) -> np.ndarray:
        """The target of those rows: class indices (int64, into `classes`) or float32 values."""
        y = self.src.y[positions]
        if self.task == "regression":
            return y.astype(np.float32)
        values = np.array(self.classes, dtype=self.src.y.dtype)   # class index i: classes[i]
        order = np.argsort(values, kind="stable")
        return order[np.searchsorted(values[order], y)].astype(np.int64)

    def manifest(self) -> dict:
        """prep.json as this source gives it (alchemist.data.manifest.build), before writing."""
        cfg, names = self.cfg, self.feature_names()
        norm = {"method": self.method, "per_channel": self.image_shape is not None}
        keys = {"zscore": ("mean", "std"), "minmax": ("min", "range")}.get(self.method)
        if keys:
            stats = [{keys[0]: float(a), keys[1]: float(b)} for a, b in zip(self.shift, self.scale)]
            norm["channels" if self.image_shape else "columns"] = \
                stats if self.image_shape else dict(zip(names, stats))
        return manifest.build(
            cfg, fmt="npz", task=self.task, classes=self.classes, target="target",
            target_dtype=self.src.y.dtype, features=names,
            y_train=self.encode_target(self.pos["train"]), y_val=self.encode_target(self.pos["val"]),
            splits={name: manifest.split_record(self.encode_target(p), p, self.classes)
                    for name, p in self.pos.items()},
            source=(self.src.name, self.src.sha256, len(self.src.y)), normalisation=norm,
            numeric=names if self.method != "none" else [], categorical={},
            missing_policy="refuse (array sources must be finite)",
            hygiene={"dropped": {}, "warnings": list(self.src.notes), "capped": {}},
            image_shape=self.image_shape,
            sequence={"vocab": self.vocab, "length": len(names)} if self.src.kind == "tokens" else None,
            inputs=self.src.kind,
            image_folder=Path(str(cfg.get("source"))).is_dir())     # predict decodes files like prep

    # ------------------------------------------------------------------ writing
    def encoded(self, positions: np.ndarray):
        """Blocks of normalised float32 rows, in the order of `positions` (sorted)."""
        for s, e in blocks(len(positions), len(self.feature_names())):
            yield normalise(self.src.rows(positions[s:e]), self.shift, self.scale, self.method)

    def write(self, out_dir) -> dict:
        """Every split streamed to `<split>.npz`, the test rows' keys, then prep.json (returned),
        all staged and replaced together on success."""
        from alchemist.data.sources import file_sha256

        built, hashes, written = self.manifest(), {}, {}
        check = Moments(len(self.shift))
        with contextlib.ExitStack() as stage:     # every file staged, replaced on success
            manifest_tmp = stage.enter_context(replacing(out_dir / manifest.MANIFEST))
            for name in manifest.SPLITS:
                tmp = stage.enter_context(replacing(out_dir / f"{name}.npz"))
                pos, found = self.pos[name], []

                def rows(pos=pos, found=found, name=name):
                    for block in self.encoded(pos):
                        if name in ("train", "val", "test"):
                            found.append(matrix_row_hashes(block))
                        if name == "train":
                            check.add(block.astype(np.float64).reshape(len(block), len(self.shift), -1))
                        yield block
                writer = NpzWriter(tmp)
                writer.stream("X", (len(pos), *self.src.X.shape[1:]) if self.image_shape is None
                              else (len(pos), *self.image_shape), np.float32,
                              (b.reshape(len(b), *(self.image_shape or self.src.X.shape[1:])) for b in rows()))
                writer.add("y", self.encode_target(pos))
                writer.add("_row_id", pos.astype(np.int64))
                writer.close()
                written[name] = tmp
                built["splits"][name]["file_sha256"] = file_sha256(tmp)
                if found:
                    hashes[name] = np.concatenate(found)
            test = hashes["test"][~np.isin(hashes["test"], np.concatenate([hashes["train"], hashes["val"]]))]
            near = near_index(*(open_member(written[k], "X").reshape(len(self.pos[k]), -1)
                                for k in ("test", "train", "val")))
            with open(stage.enter_context(replacing(out_dir / FINGERPRINTS)), "wb") as handle:
                np.savez(handle, encoded=np.unique(test), **near)
            built["test_rows"] = {"file": FINGERPRINTS, "encoded": len(np.unique(test)),
                                     "near_keys": len(near["near_keys"])}
            built["audit"] = self.audit(check)
            manifest_tmp.write_text(manifest.text(built))
        return built

    def audit(self, written: Moments) -> dict:
        """The leakage audit of what was written (disjoint splits, coarse ⊂ train, train statistics
        recomputed from the written rows); a failure is a bug and raises."""
        train, val, test = (self.pos[k] for k in ("train", "val", "test"))
        disjoint = not (np.intersect1d(train, val).size or np.intersect1d(train, test).size
                        or np.intersect1d(val, test).size)
        coarse_in_train = bool(np.isin(self.pos["train_coarse"], train).all())
        if self.method == "zscore":
            mean, std = written.mean, np.sqrt(written.m2 / max(written.n, 1))
            stats_ok = bool(np.allclose(mean, 0, atol=1e-3) and np.allclose(std[self.scale != 1.0], 1, atol=1e-3))
        elif self.method == "minmax":
            stats_ok = bool(np.allclose(written.lo, 0, atol=1e-5)
                            and np.allclose(written.hi[self.scale != 1.0], 1, atol=1e-5))
        else:
            stats_ok = True
        result = {"disjoint_splits": disjoint, "coarse_within_train": coarse_in_train,
                  "stats_match_train": stats_ok, "stats_fit_on": "train"}
        if not all(v for v in result.values() if isinstance(v, bool)):
            raise RuntimeError(f"leakage audit failed: {result}")   # a bug, never a user mistake
        return result
