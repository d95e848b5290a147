"""The data-prep stage (PB-1..PB-4): hold out test, split train/val, encode and normalise with
train statistics, subsample for the coarse search, plan class rebalancing, audit for leakage.

`prepare(cfg)` does all the work in memory and raises `UserError` before anything is written;
`write(prepared, out_dir)` then writes every file to a temporary name and renames it into place.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alchemist.atomic import replacing
from alchemist.data.callable_source import is_callable_source
from alchemist.data.encode import FeatureEncoder
from alchemist.data.guard import FINGERPRINTS, test_fingerprints
from alchemist.data.near_rows import near_index
from alchemist.data import manifest
from alchemist.data.hygiene import check_source, screen
from alchemist.data.sources import file_sha256, load_source, read_table
from alchemist.data.split_files import source_format
from alchemist.data.split import check_target, coarse_subsample, detect_task, split_rows
from alchemist.errors import UserError

ROW_ID, TARGET = "_row_id", "_y"


@dataclass
class PreparedSplits:
    tables: dict[str, pa.Table]
    manifest: dict
    fingerprints: dict[str, np.ndarray] | None = None    # the test rows' hashes (data.guard)
    arrays: object | None = None      # an array source's ArrayPrep (alchemist.data.array_prep)


def _encode_target(y: pd.Series, task: str, classes: list) -> np.ndarray:
    if task == "regression":
        return y.to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(classes)}
    codes = y.map(index)
    if codes.isna().any():
        unseen = y[codes.isna()].iloc[0]
        raise UserError(f"data.test_file: class '{unseen}' of the target does not occur in train")
    return codes.to_numpy(dtype=np.int64)


def prepare(cfg: dict) -> PreparedSplits:
    """Validate and prepare the data described by the `data:` config section, in memory (an
    array source: checked and its train statistics fitted; its splits are streamed by write)."""
    if source_format(cfg) == "npz":
        from alchemist.data.array_prep import ArrayPrep

        arrays = ArrayPrep(cfg)
        return PreparedSplits({}, arrays.manifest(), None, arrays)
    src = load_source(cfg["source"], cfg.get("target"), cfg.get("inputs", "auto"))
    frame, target = src.frame, src.target
    for reserved in (ROW_ID, TARGET):
        if reserved in frame.columns:
            raise UserError(f"data.source: column name '{reserved}' is reserved by alchemist")
    frame = check_source(frame, target, cfg.get("columns") or {})
    task = detect_task(frame[target], cfg.get("task", "auto") if cfg.get("task", "auto") != "auto"
                       else (src.task_hint or "auto"), target)
    check_target(frame[target], task, target)
    test_frame = None
    if cfg.get("test_file"):
        test_frame = read_table(cfg["test_file"], key="data.test_file")
        missing = [c for c in frame.columns if c not in test_frame.columns]
        if missing:
            raise UserError(f"data.test_file: column '{missing[0]}' missing from {cfg['test_file']}")
        check_target(test_frame[target], task, target)
    stratify = cfg.get("stratify", True)
    pos = split_rows(frame[target], task=task, seed=cfg["seed"], stratify=stratify,
                     test_fraction=None if test_frame is not None else cfg["test_fraction"],
                     val_fraction=cfg["val_fraction"], source=cfg["source"])
    parts = {name: frame.iloc[p] for name, p in pos.items()}
    ids = {name: p.astype(np.int64) for name, p in pos.items()}
    if test_frame is not None:
        parts["test"] = test_frame[list(frame.columns)]
        ids["test"] = np.arange(len(frame), len(frame) + len(test_frame), dtype=np.int64)
    features = [c for c in frame.columns if c != target]
    coarse = cfg.get("coarse") or {}
    keep = coarse_subsample(parts["train"][target], fraction=coarse.get("fraction"),
                            rows=coarse.get("rows"), classes=coarse.get("classes"),
                            task=task, seed=cfg["seed"])
    n_source = len(frame)
    src.frame = frame = None   # free the source table: the splits hold what is needed
    feats, hygiene = screen({k: parts[k] for k in ("train", "val", "test")}, features, cfg)
    if not len(feats["train"].columns):
        raise UserError("data.source: no feature column is left after " + "; ".join(
            f"'{c}' ({r})" for c, r in hygiene["dropped"].items())[:300])
    sequence = src.extra.get("sequence")       # token ids: their values are names, not sizes
    encoder = FeatureEncoder.fit(feats["train"], {k: feats[k] for k in ("val", "test")},
                                 method="none" if sequence else cfg.get("normalise", "zscore"),
                                 missing=cfg.get("missing", "impute"),
                                 max_categories=cfg.get("max_categories"),
                                 min_frequency=cfg.get("min_frequency"),
                                 image_shape=src.image_shape if src.extra.get("per_channel") else None)
    hygiene["capped"] = encoder.capped
    hygiene["imputed"] = encoder.gaps
    hygiene["warnings"] += encoder.imputation_report()
    hygiene["warnings"] += [f"data: column '{c}' has {n} rare categories beyond data.max_categories/"
                            f"min_frequency: one '{c}=__other__' column holds them"
                            for c, n in encoder.capped.items()]
    classes = sorted(parts["train"][target].unique().tolist(), key=str) if task != "regression" else []
    names = encoder.feature_names
    clash = [n for n in names if n in (ROW_ID, TARGET)]
    if clash:
        raise UserError(f"data.source: encoded column name '{clash[0]}' is reserved")
    tables, splits = {}, {}
    for name in ("train", "val", "test"):
        tables[name] = _table(ids[name], encoder.transform(feats[name]),
                              _encode_target(parts[name][target], task, classes), names)
    tables["train_coarse"] = tables["train"].take(pa.array(keep))
    splits = {name: manifest.split_record(table.column(TARGET).to_numpy(), table.column(ROW_ID).to_numpy(),
                                          classes) for name, table in tables.items()}
    same_shape = names == features           # an image or sequence source kept its columns
    built = manifest.build(
        cfg, fmt="parquet", task=task, classes=classes, target=target,
        target_dtype=parts["train"][target].dtype, features=names,
        y_train=tables["train"].column(TARGET).to_numpy(), y_val=tables["val"].column(TARGET).to_numpy(),
        splits=splits, source=(src.name, src.sha256, n_source), normalisation=encoder.manifest(),
        numeric=encoder.numeric, categorical=encoder.categorical,
        missing_policy=cfg.get("missing", "impute"), medians=encoder.medians, fill=encoder.fill,
        hygiene=hygiene, image_shape=src.image_shape if same_shape else None,
        sequence=sequence if same_shape else None)
    built["audit"] = audit(tables, feats["train"], encoder)
    used = encoder.numeric + list(encoder.categorical)
    fingerprints = test_fingerprints(
        {k: feats[k][used] for k in ("train", "val", "test")},
        {k: tables[k].select(names).to_pandas() for k in ("train", "val", "test")}, encoder.numeric)
    fingerprints.update(near_index(*(tables[k].select(names).to_pandas().to_numpy(np.float32)
                                     for k in ("test", "train", "val"))))
    built["test_rows"] = {"file": FINGERPRINTS, "raw_columns": sorted(used),
                             "raw_numeric": encoder.numeric,
                             **{kind: len(h) for kind, h in fingerprints.items()}}
    return PreparedSplits(tables, built, fingerprints)


def source_sha256(data_cfg: dict) -> str:
    """The content hash prep records for `data.source` (what keys the lockbox), without prep."""
    source = str(data_cfg["source"])
    if source_format(data_cfg) == "npz":
        from alchemist.data.arrays import source_digest

        return source_digest(data_cfg)
    if source.startswith(("sklearn:", "synthetic:")) or (
            is_callable_source(source) and not Path(source).exists()):
        return load_source(source, None).sha256
    return file_sha256(Path(source))


def _table(ids: np.ndarray, X: np.ndarray, y: np.ndarray, names: list[str]) -> pa.Table:
    columns = [pa.array(ids)] + [pa.array(X[:, j]) for j in range(X.shape[1])] + [pa.array(y)]
    return pa.Table.from_arrays(columns, names=[ROW_ID, *names, TARGET])


def audit(tables: dict[str, pa.Table], raw_train: pd.DataFrame, encoder: FeatureEncoder) -> dict:
    """Leakage audit: disjoint splits, and normalisation stats recomputed on train alone."""
    ids = {k: set(tables[k].column(ROW_ID).to_numpy().tolist()) for k in ("train", "val", "test")}
    disjoint = not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    coarse_in_train = set(tables["train_coarse"].column(ROW_ID).to_numpy().tolist()) <= ids["train"]
    stats_ok = True
    numeric = encoder.numeric if encoder.method != "none" else []
    if numeric:                # pandas → one float64 matrix: another path than the encoder's
        matrix = raw_train[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        fill = np.array([encoder.fill.get(c, np.nan) for c in numeric])
        matrix = np.where(np.isfinite(matrix) | np.isnan(fill), matrix, fill)
    for group in encoder.groups or [[j] for j in range(len(numeric))]:   # channels share stats
        values = matrix[:, group].ravel()
        if encoder.method == "zscore":
            shift, scale = values.mean(), values.std()
        else:
            shift, scale = values.min(), values.max() - values.min()
        scale = scale if scale > 1e-12 else 1.0
        j = group[0]
        stats_ok &= bool(np.isclose(shift, encoder.shift[j], rtol=1e-6, atol=1e-9 * (1 + abs(shift)))
                         and np.isclose(scale, encoder.scale[j], rtol=1e-5))
    result = {"disjoint_splits": disjoint, "coarse_within_train": coarse_in_train,
              "stats_match_train": stats_ok, "stats_fit_on": "train"}
    if not all(v for v in result.values() if isinstance(v, bool)):
        raise RuntimeError(f"leakage audit failed: {result}")   # a bug, never a user mistake
    return result


def write(prepared: PreparedSplits, out_dir: Path) -> dict:
    """Write every split and the manifest atomically: all are staged first, then the splits
    replace theirs and the manifest comes last; a failure anywhere leaves the old files."""
    if prepared.arrays is not None:
        return prepared.arrays.write(Path(out_dir))
    built = prepared.manifest
    with contextlib.ExitStack() as stage:     # replaces in reverse order of entry, on success
        manifest_tmp = stage.enter_context(replacing(out_dir / manifest.MANIFEST))
        if prepared.fingerprints is not None:
            with open(stage.enter_context(replacing(out_dir / FINGERPRINTS)), "wb") as handle:
                np.savez(handle, **prepared.fingerprints)
        for name in manifest.SPLITS:
            tmp = stage.enter_context(replacing(out_dir / f"{name}.parquet"))
            pq.write_table(prepared.tables[name], tmp)
            built["splits"][name]["file_sha256"] = file_sha256(tmp)
        manifest_tmp.write_text(manifest.text(built))
    return built
