"""Test rows recognised when NEAR (PB-32, issue 25): noisy, rescaled, shuffled or lightly edited
copies of test rows, compared where every copy meets the original — in the encoded space, the
features normalised with the TRAINING statistics (a de-normalised copy, once `predict` encodes it
with those statistics again, lands back on its test row).

A row is near a test row when all but at most one column in EDITS_PER of its encoded values lie
within GRID training standard deviations of that row's. Finding the candidates is locality-
sensitive hashing written out in numpy (no library here hashes "equal within a tolerance in all
but m coordinates"): the columns are cut into m + 1 contiguous bands, so a row edited in at most
m columns keeps at least one band whole (pigeonhole); each band's values are snapped to a grid of
width GRID twice, the second grid shifted by half a cell, so noise far below GRID never moves a
whole band across a cell boundary in both. Prep stores the test rows' band keys (`near_keys`,
`near_rows` in test_rows.npz), without keys that also occur in train or val or in more than
MAX_SHARED test rows (background bands of images, constant columns: they identify nothing, and
the splits prep wrote must never trip the guard). A query's band keys pick candidate test rows;
each candidate is confirmed against the test split's values.

Not guarded (docs/lockbox.md): rows edited in more columns than that, rows whose only intact
bands are ones train or val rows share, tables under 16 columns edited in any column.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GRID = 0.01          # cell width, in training standard deviations
EDITS_PER = 16       # one edited column in this many still leaves a row a test row
MAX_SHARED = 4       # a band key shared by more test rows than this identifies none
_CLIP = 1e14         # cells beyond this (absurd outliers) are one cell; below 2^50
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def allowed_edits(width: int) -> int:
    """How many of a row's `width` columns may differ from its test row's."""
    return width // EDITS_PER


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def band_keys(X: np.ndarray) -> np.ndarray:
    """uint64 (rows, 2 × bands): each band of each row, snapped to both grids, as one key."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    width = X.shape[1]
    bands = allowed_edits(width) + 1
    starts = np.linspace(0, width, bands + 1).astype(np.int64)[:-1]
    # a band's cells weighted by random odd 64-bit numbers, one per column, and summed modulo
    # 2^64 (a universal hash: two different bands collide with probability ~2^-63), then mixed
    columns = _mix(np.arange(1, width + 1, dtype=np.uint64)) | np.uint64(1)
    scaled = np.clip(X / GRID, -_CLIP, _CLIP)
    if np.isnan(scaled).any():
        scaled = np.nan_to_num(scaled, nan=_CLIP)
    out = []
    for grid, shift in enumerate((0.0, 0.5)):      # + 2^50: all positive, so truncation is floor
        cells = (scaled + (2.0 ** 50 + shift)).astype(np.int64).view(np.uint64) * columns
        salt = _mix(np.arange(bands, dtype=np.uint64) + np.uint64(1 + grid * bands))
        out.append(_mix(np.add.reduceat(cells, starts, axis=1) ^ salt))
    return np.concatenate(out, axis=1)


def _blocks(X):
    """(start, rows) of X in blocks of about 2^19 values (4 MB per temporary of band_keys)."""
    rows = max(1, (1 << 19) // max(1, int(np.prod(np.shape(X)[1:]))))
    for start in range(0, len(X), rows):
        yield start, np.asarray(X[start:start + rows])


def near_index(test, *others) -> dict[str, np.ndarray]:
    """The arrays prep stores for `test` (N, F): its informative band keys, sorted, and the
    test row each belongs to. `others`: the train and val matrices (keys they hold are left out)."""
    keys, rows = [], []
    for start, block in _blocks(test):
        k = band_keys(block)
        keys.append(k.ravel())
        rows.append(np.repeat(np.arange(start, start + len(block), dtype=np.int32), k.shape[1]))
    keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    order = np.argsort(keys, kind="stable")       # a row's keys differ (salted by band and grid)
    keys, rows = keys[order], (np.concatenate(rows) if rows else np.zeros(0, np.int32))[order]
    del order
    unique, counts = np.unique(keys, return_counts=True)
    keep = counts[np.searchsorted(unique, keys)] <= MAX_SHARED
    shared = [np.zeros(0, np.uint64)]
    for other in others:
        for _, block in _blocks(other):
            k = band_keys(block).ravel()
            shared.append(np.unique(k[_member(k, unique)]))
    keep &= ~_member(keys, np.unique(np.concatenate(shared)))
    return {"near_keys": keys[keep], "near_rows": rows[keep]}


def _member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """np.isin(values, sorted_keys) without sorting the (large, already sorted) keys again."""
    if not len(sorted_keys):
        return np.zeros(values.shape, bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def near_count(X, index: dict[str, np.ndarray], test_rows) -> int:
    """How many rows of X (N, F) are near a test row; `test_rows(ids)` reads those test rows
    (encoded, (len(ids), F)) — only for candidates the keys found."""
    keys, owners = index["near_keys"], index["near_rows"]
    if not len(keys) or not len(X):
        return 0
    width = int(np.prod(np.shape(X)[1:]))
    found = 0
    for _, block in _blocks(X):
        block = block.reshape(len(block), -1)
        k = band_keys(block)
        hit_row, hit_col = np.nonzero(_member(k, keys))
        if not len(hit_row):
            continue
        lo = np.searchsorted(keys, k[hit_row, hit_col], "left")
        hi = np.searchsorted(keys, k[hit_row, hit_col], "right")
        counts = hi - lo                # each hit's range of owners in the sorted keys, flattened
        query = np.repeat(hit_row, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        cand = owners[np.repeat(lo, counts) + offsets]
        pairs = np.unique(np.stack([query, cand]), axis=1)
        test = np.asarray(test_rows(np.unique(pairs[1])), dtype=np.float64).reshape(-1, width)
        where = np.searchsorted(np.unique(pairs[1]), pairs[1])
        far = (np.abs(block[pairs[0]].astype(np.float64) - test[where]) > GRID).sum(1)
        found += len(np.unique(pairs[0][far <= allowed_edits(width)]))
    return found


def describe(width: int) -> str:
    """The tolerance, in words, for a refusal message."""
    edits = allowed_edits(width)
    also = f" in all but at most {edits} of its {width} columns" if edits else f" in all {width} columns"
    return f"within {GRID} training standard deviations of a test row{also}"


def load_index(path: Path) -> dict[str, np.ndarray] | None:
    """The near-row index stored in `path` (test_rows.npz); None when it holds none (a prep
    made before near rows were indexed)."""
    if not Path(path).exists():
        return None
    with np.load(path) as stored:
        if "near_keys" not in stored.files:
            return None
        return {"near_keys": stored["near_keys"], "near_rows": stored["near_rows"]}
