"""`data.source: package.module:callable` — your own data, through the same prep.

The callable (imported from the working directory, called without arguments) returns either
`(X, y)` arrays (NumPy or torch) or a `torch.utils.data.Dataset` whose items are `(x, y)` pairs
(materialised once, in order). X of shape (N, F) is a table; (N, C, H, W) images and (N, H, W)
one-channel images get an image shape and per-channel normalisation (PB-2), as the built-in image
set; with `data.inputs: tokens`, (N, T) integer arrays are token ids (columns `t00..`, 0 =
padding, never normalised) for the recurrent models. Columns are named `x0..` (tables) or
`c{channel}_{row}_{col}` (images); the target column is `target`. The content hash (what keys
the lockbox) is of the arrays, and the module's file is an input of the prep rule, so editing it
reruns prep.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.data.encode import pixel_columns
from alchemist.errors import UserError


def is_callable_source(source: str) -> bool:
    """Whether `source` has the form `package.module:callable` (dotted identifiers, colon, identifier)."""
    head, sep, attr = str(source).partition(":")
    return bool(sep) and attr.isidentifier() and all(p.isidentifier() for p in head.split("."))


def module_file(source: str) -> str | None:
    """The file that defines the callable's module (an input of prep), if it is a file."""
    import importlib.util

    sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(source.partition(":")[0])
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path.remove(os.getcwd())
    origin = getattr(spec, "origin", None)
    return os.path.relpath(origin) if origin and Path(origin).is_file() else None


def load(source: str) -> tuple[pd.DataFrame, str, list[int] | None]:
    """(frame with `target`, content sha256, image shape or None)."""
    module_name, _, attr = source.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        result = getattr(importlib.import_module(module_name), attr)()
    except Exception as err:                    # noqa: BLE001 - the user's code: one line
        raise UserError(f"data.source: {source!r} failed: {type(err).__name__}: {err}") from None
    finally:
        sys.path.remove(os.getcwd())
    X, y = _arrays(result, source)
    if len(X) != len(y):
        raise UserError(f"data.source: {source!r} returned {len(X)} inputs but {len(y)} targets")
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim not in (2, 4):
        raise UserError(f"data.source: {source!r}: inputs of shape {X.shape[1:]} per row; expected "
                        "(features,), (H, W) or (C, H, W)")
    shape = list(X.shape[1:]) if X.ndim == 4 else None
    names = pixel_columns(shape) if shape else [f"x{i}" for i in range(X.shape[1])]
    flat = np.ascontiguousarray(X.reshape(len(X), -1))
    frame = pd.DataFrame(flat, columns=names)
    frame["target"] = y
    digest = hashlib.sha256(flat.tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    return frame, digest, shape


def _arrays(result, source: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(result, tuple) and len(result) == 2:
        X, y = result
    elif hasattr(result, "__getitem__") and hasattr(result, "__len__") and \
            not isinstance(result, (str, bytes, dict)):                     # a torch Dataset
        items = [_item(result, i, source) for i in range(len(result))]
        if not items or not all(isinstance(it, (tuple, list)) and len(it) == 2 for it in items):
            raise UserError(f"data.source: {source!r}: a Dataset's items must be (x, y) pairs")
        X = np.stack([_numpy(x) for x, _ in items])
        y = np.array([_numpy(t).item() if np.ndim(_numpy(t)) == 0 else _numpy(t) for _, t in items])
    else:
        raise UserError(f"data.source: {source!r} returned {type(result).__name__}; expected (X, y) "
                        "arrays or a torch Dataset of (x, y) pairs")
    return _numpy(X).astype(np.float64, copy=False), _numpy(y)


def _item(dataset, i: int, source: str):
    """dataset[i], or one line naming the index when reading it raises."""
    try:
        return dataset[i]
    except Exception as err:                    # noqa: BLE001 - the user's __getitem__: one line
        text = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        raise UserError(f"data.source: {source!r}: reading item {i} of {len(dataset)} raised {text}") from None


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
