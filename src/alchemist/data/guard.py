"""The test-split guard (PB-1, PB-32): only the lockbox reads the test rows, in any form.

Three checks, each by content, never by name:
* a FILE is the test split when its sha256 equals `prep.json`'s `splits.test.file_sha256`,
  whatever its name or folder (a file whose size differs from the data folder's test.parquet is
  not it: no full hash of a big train split in every pack job);
* ROWS are test rows when their content is: prep stores the 64-bit hashes of the test rows
  (`test_rows.npz`; pandas' `hash_pandas_object`, order-independent) twice — of the raw feature
  values (what `alchemist predict` is given: a shuffled copy, a CSV export, the whole source
  table) and of the encoded features (what training reads) — leaving out rows that also occur in
  train or val (duplicates in the source are not test rows). Any overlap refuses, with its count;
* NEAR rows (noisy, rescaled, de-normalised, lightly edited copies) by data.near_rows, on the
  encoded matrix: training skips it for the splits prep wrote (their sha256 as recorded).

A custom model receives tensors and its settings, never a path; its own code could still open
`results/data/test.parquet` itself — nothing inside one process can stop that (PB-32 is a
discipline this guard backs up, not a sandbox).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.data.sources import file_sha256
from alchemist.errors import UserError

FINGERPRINTS = "test_rows.npz"
LOCKBOX = ("only the lockbox reads them (PB-32): `snakemake final_test --config final_test=confirm` "
           "evaluates the winner on them, once")


def refuse_test_split(path: Path, manifest: dict, who: str, data_dir: Path) -> None:
    """UserError when `path` is this data's test split (by content): only the lockbox reads it."""
    test_sha = (manifest.get("splits", {}).get("test") or {}).get("file_sha256")
    from alchemist.data.split_files import split_path

    test_file = split_path(data_dir, "test", manifest)
    if test_file.exists() and test_file.stat().st_size != Path(path).stat().st_size:
        return
    if test_sha and file_sha256(Path(path)) == test_sha:
        raise UserError(f"{who} refuses test data ({path}); {LOCKBOX}")


def matrix_row_hashes(block: np.ndarray) -> np.ndarray:
    """uint64 per row of a 2-D array, from the bytes of its values (the splits of array sources,
    alchemist.data.arrays: rows are compared as written, float32)."""
    block = np.ascontiguousarray(block).reshape(len(block), -1)
    return np.array([int.from_bytes(hashlib.blake2b(row.data, digest_size=8).digest(), "little")
                     for row in block], dtype=np.uint64)


def refuse_test_matrix(X: np.ndarray, data_dir: Path, who: str, what: str, block_rows: int) -> None:
    """refuse_test_rows for an array split (N, F), read block by block (it may be memory-mapped)."""
    path = Path(data_dir) / FINGERPRINTS
    if not path.exists() or not len(X):
        return
    with np.load(path) as stored:
        test = stored["encoded"]
    overlap = sum(int(np.isin(matrix_row_hashes(X[s:s + block_rows]), test).sum())
                  for s in range(0, len(X), block_rows))
    if overlap:
        raise UserError(f"{who} refuses {what}: {overlap} of its {len(X)} rows are test rows "
                        f"(by content, in any order); {LOCKBOX}")


def row_hashes(frame: pd.DataFrame, columns: list[str], numeric: list[str] | None = None) -> np.ndarray:
    """uint64 per row of `columns` (sorted by name): numeric columns as float64, others as
    text, so a CSV export of the same rows hashes the same."""
    numeric = set(columns if numeric is None else numeric)
    ordered = sorted(columns)
    nums = [c for c in ordered if c in numeric]
    try:                      # wide numeric tables (images): one conversion, not one per column
        matrix = frame[nums].to_numpy(dtype=np.float64, na_value=np.nan) if nums else None
    except (ValueError, TypeError):
        matrix = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)
                                  for c in nums])
    columns_out = {}
    if nums:                  # the numeric block as one bytes value per row (-0.0 → 0.0, one NaN)
        matrix = np.ascontiguousarray(matrix + 0.0)
        matrix[np.isnan(matrix)] = np.nan
        columns_out["__numbers__"] = np.array([row.tobytes() for row in matrix], dtype=object)
    for c in ordered:
        if c not in numeric:
            columns_out[c] = frame[c].astype(str).to_numpy()
    canonical = pd.DataFrame(columns_out, copy=False)
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy()


def test_fingerprints(raw: dict[str, pd.DataFrame], encoded: dict[str, pd.DataFrame],
                      numeric: list[str]) -> dict[str, np.ndarray]:
    """The test rows' hashes, raw and encoded, without those that also occur in train or val."""
    out = {}
    for kind, parts in (("raw", raw), ("encoded", encoded)):
        cols = list(parts["test"].columns)
        num = numeric if kind == "raw" else cols
        test = row_hashes(parts["test"], cols, num)
        elsewhere = np.concatenate([row_hashes(parts[k], cols, num) for k in ("train", "val")])
        out[kind] = np.unique(test[~np.isin(test, elsewhere)])
    return out


def refuse_test_rows(frame: pd.DataFrame, columns: list[str], kind: str, data_dir: Path,
                     who: str, what: str, numeric: list[str] | None = None) -> None:
    """UserError when any row of `frame` is a test row by content (counted)."""
    path = Path(data_dir) / FINGERPRINTS
    if not path.exists() or not len(frame):
        return
    with np.load(path) as stored:
        test = stored[kind]
    overlap = int(np.isin(row_hashes(frame, columns, numeric), test).sum())
    if overlap:
        raise UserError(f"{who} refuses {what}: {overlap} of its {len(frame)} rows are test rows "
                        f"(by content, in any order); {LOCKBOX}")


def refuse_near_rows(X, data_dir: Path, manifest: dict, who: str, what: str) -> None:
    """UserError when rows of the encoded matrix X (N, F) are NEAR test rows (data.near_rows:
    noisy, rescaled, shuffled or lightly edited copies), with their count and the tolerance."""
    from alchemist.data import near_rows
    from alchemist.data.split_files import read_split

    index = near_rows.load_index(Path(data_dir) / FINGERPRINTS)
    if index is None or not len(X):
        return

    test = []                          # read once, and only if some block has candidates

    def test_rows(ids):
        if not test:
            test.append(read_split(data_dir, "test", manifest, manifest["features"])[0])
        return test[0][ids]
    count = near_rows.near_count(X, index, test_rows)
    if count:
        width = int(np.prod(np.shape(X)[1:]))
        raise UserError(f"{who} refuses {what}: {count} of its {len(X)} rows are "
                        f"{near_rows.describe(width)} (by content, in any order); {LOCKBOX}")


def prep_wrote(path: Path, name: str, manifest: dict) -> bool:
    """Whether `path` is the split prep wrote as `name` (its sha256 as recorded): such a split was
    made disjoint from test by prep, so the content checks may skip it."""
    recorded = (manifest.get("splits", {}).get(name) or {}).get("file_sha256")
    return bool(recorded) and file_sha256(Path(path)) == recorded
