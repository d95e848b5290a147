"""Built-in data that needs no download, generated deterministically (same bytes on every
machine): `synthetic:shapes` — coloured shapes on a noisy background, for the image path
(the CNNs, augmentation, per-channel normalisation); `synthetic:sequences` — token-id
sequences, for the sequence path (embedding + LSTM/GRU).

`synthetic:shapes` is 6,000 RGB images of 32×32 in four balanced classes (disc, square,
triangle, cross), each drawn at a random position, size and colour on a random dark background
with pixel noise; `synthetic:shapes:<n>` draws n images (e.g. 600 for a quick test). Pixels are
in [0, 1], stored channel-major (C, H, W) as columns `c{channel}_{row}_{col}`.

`synthetic:sequences` is 6,000 sequences of 6 to 20 tokens from a vocabulary of 9 (ids 1..9,
padded with 0 to length 20, columns `t00`..`t19`); the label says whether token 1 occurs more
often than token 2 (ties are not drawn): counting over a variable length, which a recurrent net
learns from the order-free evidence spread along the sequence.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from alchemist.data.encode import pixel_columns, token_columns

SHAPES = ("disc", "square", "triangle", "cross")
SIZE = 32
DEFAULT_ROWS = 6000
SEED = 20261201


def parse(name: str) -> tuple[str, int]:
    """`synthetic:shapes[:n]` → ("shapes", n)."""
    from alchemist.errors import UserError

    parts = name.split(":")
    kind = parts[1] if len(parts) > 1 else ""
    if kind not in GENERATORS or len(parts) > 3:
        raise UserError(f"data.source: unknown synthetic set '{name}' (known: "
                        f"{', '.join('synthetic:' + k for k in GENERATORS)}, optionally ':<rows>')")
    rows = DEFAULT_ROWS
    if len(parts) == 3:
        if not parts[2].isdigit() or int(parts[2]) < 40:
            raise UserError(f"data.source: '{name}': the row count must be an integer >= 40")
        rows = int(parts[2])
    return kind, rows


def shapes(rows: int = DEFAULT_ROWS, size: int = SIZE, seed: int = SEED) -> tuple[pd.DataFrame, list[int]]:
    """(frame of C*H*W pixel columns + `target`, image shape [3, size, size])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    labels = np.arange(rows) % len(SHAPES)
    rng.shuffle(labels)
    images = np.empty((rows, 3, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        r = rng.uniform(0.18, 0.32) * size
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = (yy - cy) / r, (xx - cx) / r
        mask = {0: dy ** 2 + dx ** 2 <= 1,
                1: (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8),
                2: (dy <= 0.8) & (dy >= -0.9) & (np.abs(dx) <= (dy + 0.9) * 0.6),
                3: ((np.abs(dy) <= 0.25) | (np.abs(dx) <= 0.25)) & (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
                }[int(label)]
        background = rng.uniform(0.0, 0.35, 3).astype(np.float32)
        colour = rng.uniform(0.45, 1.0, 3).astype(np.float32)
        img = np.where(mask[None], colour[:, None, None], background[:, None, None])
        images[i] = np.clip(img + rng.normal(0, 0.06, img.shape), 0, 1)
    names = pixel_columns([3, size, size])
    frame = pd.DataFrame(images.reshape(rows, -1), columns=names)
    frame["target"] = labels
    return frame, [3, size, size]


def sequences(rows: int = DEFAULT_ROWS, length: int = 20, vocab: int = 10,
              seed: int = SEED) -> tuple[pd.DataFrame, dict]:
    """(frame of `length` token columns + `target`, {"vocab": vocab, "length": length})."""
    rng = np.random.default_rng(seed + 1)
    kept, labels = [], []
    while len(kept) < rows:
        n = rng.integers(6, length + 1)
        seq = rng.integers(1, vocab, n)
        ones, twos = int((seq == 1).sum()), int((seq == 2).sum())
        if ones == twos or labels.count(int(ones > twos)) >= (rows + 1) // 2:
            continue                                         # no ties; balanced classes
        kept.append(np.pad(seq, (0, length - n)))
        labels.append(int(ones > twos))
    frame = pd.DataFrame(np.stack(kept), columns=token_columns(length))
    frame["target"] = labels
    return frame, {"vocab": vocab, "length": length}


GENERATORS = {"shapes": shapes, "sequences": sequences}
