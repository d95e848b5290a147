"""prep.json, the prepared data's manifest, built in one place for both preps — the table prep
(alchemist.data.prep) and the array prep (alchemist.data.array_prep): its keys (docs/architecture.md
lists them), how a split, the source, the target's type and the regression baseline are recorded,
and the file's name and text. A prep passes what it measured; `build` words it. The writer adds
what needs the written files: each split's `file_sha256`, `audit` and `test_rows`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from alchemist.data.sources import file_sha256
from alchemist.data.split import choose_metric, rebalance_plan

MANIFEST = "prep.json"
SPLITS = ("train", "val", "test", "train_coarse")     # every prep writes these, in this order


def target_type(dtype) -> str:
    """The type labels come back in (prep.json's `target_type`), from a numpy or pandas dtype:
    bool, int, float, else str (objects, text, pandas' string dtype)."""
    return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(getattr(dtype, "kind", "O"), "str")


def split_record(y: np.ndarray, row_ids: np.ndarray, classes: list) -> dict:
    """A split's entry: its rows, the count of each class by name ({} for regression) and the
    sha256 of its row ids (int64), which names the rows wherever they are copied."""
    counts = ({str(c): int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)))}
              if classes else {})
    ids = np.ascontiguousarray(row_ids, dtype=np.int64)
    return {"rows": len(ids), "class_counts": counts,
            "row_ids_sha256": hashlib.sha256(ids.tobytes()).hexdigest()}


def build(cfg: dict, *, fmt: str, task: str, classes: list, target: str, target_dtype,
          features: list[str], y_train: np.ndarray, y_val: np.ndarray, splits: dict,
          source: tuple[str, str, int], normalisation: dict, numeric: list[str],
          categorical: dict, missing_policy: str, hygiene: dict, image_shape=None, sequence=None,
          medians: dict | None = None, fill: dict | None = None, **more) -> dict:
    """The manifest of one prep before its files are written (every key but the writer's):
    `source` is (name, sha256, rows); `y_train`/`y_val` are the encoded targets (class indices,
    or values for regression), from which the metric, the rebalancing plan and — for regression —
    the train-mean baseline are decided; `more` holds a prep's own keys (inputs, image_folder)."""
    test_file = cfg.get("test_file")
    metric = choose_metric(cfg.get("metric", "auto"), task, y_train, len(classes))
    manifest = {
        "format": fmt, "task": task, "n_classes": len(classes) if task == "multiclass" else 1,
        "classes": [str(c) for c in classes], "target": target, "features": features,
        "target_type": target_type(target_dtype), "image_shape": image_shape, "sequence": sequence,
        "hygiene": hygiene, "splits": splits, "normalisation": normalisation,
        "encoding": {"numeric": numeric, "categorical": categorical},
        "missing": {"policy": missing_policy, "medians": medians or {}, "fill": fill or {}},
        "source": {"name": source[0], "sha256": source[1], "rows": source[2], "test_file": test_file,
                   "test_file_sha256": file_sha256(Path(test_file)) if test_file else None},
        "metric": metric,
        "rebalance": rebalance_plan(y_train, task, len(classes), cfg.get("rebalance", "auto"), metric["name"]),
        "config": cfg, **more,
    }
    if task == "regression":        # what guessing scores: the train mean (the summary's baseline)
        mean, val = float(np.mean(y_train)), np.asarray(y_val, dtype=np.float64)
        manifest["baseline"] = {"predict": "train mean", "value": mean,
                                "val_rmse": float(np.sqrt(np.mean((val - mean) ** 2)))}
    return manifest


def text(manifest: dict) -> str:
    """prep.json's text: indented JSON with sorted keys (values JSON lacks written as str)."""
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)


def read(data_dir: str | Path) -> dict:
    """The manifest a prep wrote in `data_dir`."""
    return json.loads((Path(data_dir) / MANIFEST).read_text())
