"""Where rows come from: scikit-learn's built-in tables and alchemist's generated sets (no
download; alchemist.data.synthetic), the user's CSV/Parquet, or the user's own
`package.module:callable` returning arrays or a Dataset (alchemist.data.callable_source).

A source is loaded into one DataFrame with the target in a named column, plus facts the prep
stage records: a content sha256, the task hint, and an image shape for image-shaped data.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.data import callable_source
from alchemist.data.encode import token_columns
from alchemist.errors import UserError

BUILTINS = {
    # name: (sklearn loader, task, image shape)
    "digits": ("load_digits", "multiclass", [1, 8, 8]),
    "breast_cancer": ("load_breast_cancer", "binary", None),
    "wine": ("load_wine", "multiclass", None),
    "diabetes": ("load_diabetes", "regression", None),
    "iris": ("load_iris", "multiclass", None),
}
BUILTIN_TARGET = "target"


@dataclass
class Source:
    frame: pd.DataFrame
    target: str
    name: str
    sha256: str
    task_hint: str | None = None
    image_shape: list[int] | None = None
    extra: dict = field(default_factory=dict)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _load_synthetic(name: str) -> Source:
    """`synthetic:<set>[:rows]` (alchemist.data.synthetic): images normalised per channel,
    token sequences not at all."""
    from alchemist.data import synthetic

    kind, rows = synthetic.parse(name)
    frame, shape = synthetic.GENERATORS[kind](rows)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    if kind == "sequences":      # token ids: never normalised; the model reads `sequence`
        return Source(frame, BUILTIN_TARGET, name, digest, "binary", None, extra={"sequence": shape})
    return Source(frame, BUILTIN_TARGET, name, digest, "multiclass", shape, extra={"per_channel": True})


def _load_builtin(name: str) -> Source:
    key = name.split(":", 1)[1]
    if key not in BUILTINS:
        raise UserError(f"data.source: unknown built-in '{name}' "
                        f"(known: {', '.join('sklearn:' + k for k in BUILTINS)})")
    loader, task, image_shape = BUILTINS[key]
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    features = [str(f) for f in getattr(bunch, "feature_names", [])] or \
        [f"x{i}" for i in range(bunch.data.shape[1])]
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=features)
    frame[BUILTIN_TARGET] = bunch.target
    digest = hashlib.sha256(np.ascontiguousarray(bunch.data).tobytes()
                            + np.ascontiguousarray(bunch.target).tobytes()).hexdigest()
    return Source(frame, BUILTIN_TARGET, name, digest, task, image_shape)


def read_table(path: str | Path, key: str = "data.source") -> pd.DataFrame:
    """Read a CSV or Parquet file; a missing or unreadable file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{key}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv", ".txt", ".tsv"):
        from alchemist.data.hygiene import check_header

        try:
            check_header(path)
        except UserError:
            raise
        except Exception as err:  # malformed file: report it, not a traceback
            raise UserError(f"{key}: cannot read {path}: {err}") from None
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as err:  # malformed file: report it, not a traceback
        raise UserError(f"{key}: cannot read {path}: {err}") from None
    raise UserError(f"{key}: unsupported file type '{suffix}' for {path} (use .csv or .parquet)")


def load_source(source: str, target: str | None, inputs: str = "auto") -> Source:
    """Load `sklearn:<name>`, `synthetic:<set>`, a callable or a CSV/Parquet path; `target` names
    the label column of a file; `inputs: tokens` reads a callable's (N, T) arrays as token ids."""
    if source.startswith(("sklearn:", "synthetic:")):
        loaded = _load_builtin(source) if source.startswith("sklearn:") else _load_synthetic(source)
        if target not in (None, BUILTIN_TARGET):
            raise UserError(f"data.target: built-in '{source}' has target column "
                            f"'{BUILTIN_TARGET}', not '{target}'")
        return loaded
    if callable_source.is_callable_source(source) and not Path(source).exists():
        if target not in (None, BUILTIN_TARGET):
            raise UserError(f"data.target: a callable source's target column is "
                            f"'{BUILTIN_TARGET}', not '{target}'")
        frame, digest, shape = callable_source.load(source)
        if inputs == "tokens":          # token ids: never normalised; the model reads `sequence`
            ids = frame.drop(columns=BUILTIN_TARGET).to_numpy()
            if shape is not None or not np.array_equal(ids, np.round(ids)) or ids.min() < 0:
                raise UserError(f"data.inputs: tokens must be (N, T) non-negative integer ids; "
                                f"{source!r} returned other inputs")
            frame.columns = token_columns(ids.shape[1]) + [BUILTIN_TARGET]
            return Source(frame, BUILTIN_TARGET, source, digest, None, None,
                          extra={"sequence": {"vocab": int(ids.max()) + 1, "length": ids.shape[1]}})
        return Source(frame, BUILTIN_TARGET, source, digest, None, shape,
                      extra={"per_channel": shape is not None})
    if not target:
        raise UserError("data.target: a file source needs the name of its target column")
    frame = read_table(source)
    if target not in frame.columns:
        raise UserError(f"data.target: column '{target}' not found in {source} "
                        f"(columns: {', '.join(map(str, frame.columns[:20]))})")
    return Source(frame, target, str(source), file_sha256(Path(source)))
