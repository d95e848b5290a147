"""Array sources — `.npy` / `.npz` files and image folders — prepared out of core (PB-1..PB-3).

`data.source: X.npy` with `data.target: y.npy` (labels file), or `data.source: data.npz` holding
the labels under `data.target` (default `y`), the inputs as `X` (or its one other array) and,
for token sequences, optionally `lengths`; or a folder of images (alchemist.data.image_folder).
`data.inputs` says what a row is: `table` (N, F), `image` (N, H, W) or (N, C, H, W), `tokens`
(N, T) integer ids with 0 as padding (positions past `lengths` become 0); `auto` picks table
for 2-D and image for 3-D/4-D inputs.

The inputs are memory-mapped and read in blocks of rows; only labels and row positions are held
whole. Splits (hold-out, stratified 8:2, coarse subsample) come from the labels, as for tables
(alchemist.data.split). One pass over every row checks the values are finite, counts the token
vocabulary and accumulates the TRAIN rows' statistics (per feature for tables, per channel for
images, none for tokens; Chan's pairwise mean/variance merge, float64). Writing is a second
pass: each split normalised into `<split>.npz` (alchemist.data.split_files), the test rows'
hashes (alchemist.data.guard) taken on the way, and the audit recomputes the statistics of the
written train split (z-score: mean 0 and std 1 per group; min-max: 0 and 1): true only when
they were fitted on train alone.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alchemist.data import split_files
from alchemist.errors import UserError

BLOCK_BYTES = 1 << 24        # rows per block: about 16 MB of float64


@dataclass
class ArraySource:
    X: np.ndarray            # (N, ...) memory-mapped (files) or in memory (image folders)
    y: np.ndarray            # (N,)
    kind: str                # table | image | tokens
    name: str
    sha256: str
    lengths: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)     # what decoding did (image folders)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Rows at sorted positions as float64 (N, F); token positions past a length are 0."""
        block = np.asarray(self.X[positions], dtype=np.float64).reshape(len(positions), -1)
        if self.lengths is not None:
            block[np.arange(block.shape[1])[None, :] >= self.lengths[positions][:, None]] = 0
        return block


def source_digest(cfg: dict) -> str:
    """The source's content hash (as `load` records it) from its files alone, no decoding."""
    path = Path(cfg["source"])
    if path.is_dir():
        from alchemist.data.image_folder import folder_digest

        return folder_digest(path, cfg.get("image_size"))
    return _digest(path, Path(cfg.get("target") or "")) if path.suffix.lower() == ".npy" else _digest(path)


def load(cfg: dict) -> ArraySource:
    """The array source `cfg` names (.npy with a labels file, .npz, or an image folder), shapes and labels
    checked; a UserError for a missing, unreadable or ill-shaped source."""
    source, path = str(cfg["source"]), Path(cfg["source"])
    if path.is_dir():
        from alchemist.data.image_folder import load_folder

        X, y, digest, notes = load_folder(path, cfg.get("image_size"))
        return _checked(ArraySource(X, y, "image", source, digest, notes=notes), cfg)
    if not path.is_file():
        raise UserError(f"data.source: file not found: {path}")
    try:
        if path.suffix.lower() == ".npy":
            if not cfg.get("target"):
                raise UserError("data.target: a .npy source needs its labels file (data.target: y.npy)")
            labels = Path(cfg["target"])
            if not labels.is_file():
                raise UserError(f"data.target: file not found: {labels}")
            X, y, lengths = split_files.open_member(path, None), np.load(labels, allow_pickle=False), None
            digest = _digest(path, labels)
        else:
            names = split_files.member_names(path)
            target = cfg.get("target") or "y"
            if target not in names:
                raise UserError(f"data.target: no array '{target}' in {path} (arrays: {', '.join(names)})")
            inputs = ["X"] if "X" in names else [n for n in names if n not in (target, "lengths")]
            if len(inputs) != 1:
                raise UserError(f"data.source: {path} needs one inputs array named 'X' (arrays: "
                                f"{', '.join(names)})")
            X, y = split_files.open_member(path, inputs[0]), np.asarray(split_files.open_member(path, target))
            lengths = np.asarray(split_files.open_member(path, "lengths")) if "lengths" in names else None
            digest = _digest(path)
    except UserError:
        raise
    except Exception as err:                    # noqa: BLE001 - a malformed file: one line
        raise UserError(f"data.source: cannot read {path}: {type(err).__name__}: {err}") from None
    return _checked(ArraySource(X, y, _kind(X, cfg.get("inputs", "auto"), path), source, digest, lengths), cfg)


def _digest(*paths: Path) -> str:
    from alchemist.data.sources import file_sha256

    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest() \
        if len(paths) > 1 else file_sha256(paths[0])


def _kind(X: np.ndarray, inputs: str, path: Path) -> str:
    if X.dtype.kind not in "biuf":
        raise UserError(f"data.source: {path} holds {X.dtype} inputs; numbers expected")
    if inputs == "auto":
        inputs = {2: "table", 3: "image", 4: "image"}.get(X.ndim, "")
    if inputs == "image" and X.ndim == 4 and X.shape[1] > 4 and X.shape[-1] in (1, 3, 4):
        raise UserError(f"data.inputs: images of shape {X.shape[1:]} in {path} look channels-last "
                        "(H, W, C); store them as (N, C, H, W), e.g. np.moveaxis(X, -1, 1)")
    shapes = {"table": (2,), "image": (3, 4), "tokens": (2,)}
    if X.ndim not in shapes.get(inputs, ()):
        raise UserError(f"data.inputs: inputs of shape {X.shape} in {path} are not a {inputs or 'known kind'} "
                        "(table: (N, F); image: (N, H, W) or (N, C, H, W); tokens: (N, T))")
    if inputs == "tokens" and X.dtype.kind not in "biu":
        raise UserError(f"data.inputs: tokens must be integer ids; {path} holds {X.dtype}")
    return inputs


def _checked(src: ArraySource, cfg: dict) -> ArraySource:
    if src.y.ndim == 2 and src.y.shape[1] == 1:
        src.y = src.y[:, 0]
    if src.y.ndim != 1:
        raise UserError(f"data.target: labels of shape {src.y.shape}; one label per row expected")
    if len(src.X) != len(src.y):
        raise UserError(f"data.source: {len(src.X)} input rows but {len(src.y)} labels")
    if src.lengths is not None and src.lengths.shape != src.y.shape:
        raise UserError(f"data.source: 'lengths' of shape {src.lengths.shape}; one per row expected")
    if cfg.get("test_file"):
        raise UserError("data.test_file: not supported with an array source; the test hold-out "
                        "(data.test_fraction) splits it")
    return src


def blocks(n_rows: int, row_width: int):
    """(start, stop) ranges covering `n_rows` rows of `row_width` values, ~BLOCK_BYTES of float64 each."""
    step = max(1, BLOCK_BYTES // (8 * max(row_width, 1)))
    return [(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


class Moments:
    """Mean, population std, min and max per group of a stream of (rows, groups, per) blocks."""

    def __init__(self, groups: int):
        self.n, self.mean, self.m2 = 0, np.zeros(groups), np.zeros(groups)
        self.lo, self.hi = np.full(groups, np.inf), np.full(groups, -np.inf)

    def add(self, v: np.ndarray) -> None:
        """Merge a block `v` (rows, groups, per) into each group's running count, mean, M2, min and max."""
        n = v.shape[0] * v.shape[2]
        if not n:
            return
        mean = v.mean((0, 2))
        m2 = ((v - mean[None, :, None]) ** 2).sum((0, 2))
        delta, total = mean - self.mean, self.n + n
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total
        self.n = total
        self.lo, self.hi = np.minimum(self.lo, v.min((0, 2))), np.maximum(self.hi, v.max((0, 2)))

    def shift_scale(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) per group for `method`: zscore (mean, population std), minmax (min, max - min), else
        (0, 1); a scale of at most 1e-12 becomes 1."""
        if method == "zscore":
            shift, scale = self.mean, np.sqrt(self.m2 / max(self.n, 1))
        elif method == "minmax":
            shift, scale = self.lo, self.hi - self.lo
        else:
            shift, scale = np.zeros_like(self.mean), np.ones_like(self.mean)
        return shift, np.where(scale > 1e-12, scale, 1.0)


def layout(src: ArraySource) -> tuple[list[int] | None, int, int]:
    """(image shape, groups, values per group): images (C, H, W) share stats per channel."""
    per_row = int(np.prod(src.X.shape[1:]))
    if src.kind != "image":
        return None, per_row, 1
    shape = [1, *src.X.shape[1:]] if src.X.ndim == 3 else list(src.X.shape[1:])
    return shape, shape[0], per_row // shape[0]


def normalise(block: np.ndarray, shift: np.ndarray, scale: np.ndarray, method: str) -> np.ndarray:
    """Rows (n, F) float64 → float32, each group (feature or channel; `len(shift)` of them, equal
    widths) shifted and scaled with the TRAIN statistics (PB-2); `none` leaves values as they are."""
    if method != "none":
        n, groups = len(block), len(shift)
        block = ((block.reshape(n, groups, -1) - shift[None, :, None]) / scale[None, :, None]).reshape(n, -1)
    return block.astype(np.float32)


def manifest_statistics(manifest: dict) -> tuple[str, np.ndarray, np.ndarray]:
    """(method, shift, scale) an array prep recorded in prep.json."""
    norm = manifest["normalisation"]
    method = norm["method"]
    if method == "none":
        return method, np.zeros(1), np.ones(1)
    keys = ("mean", "std") if method == "zscore" else ("min", "range")
    stats = norm["channels"] if "channels" in norm else [norm["columns"][n] for n in manifest["features"]]
    return method, np.array([s[keys[0]] for s in stats]), np.array([s[keys[1]] for s in stats])
