"""What the near-row guard (alchemist.data.near_rows) costs and catches, per data set.

For each set: the time to build the index at prep (test keys, train/val keys left out), the time
to check a whole train split (what a modified split costs a training job; prep's own splits skip
it), the false alarms on train and val (must be 0), and how many test rows each attack gets
through: float noise, rescaled by 1 + 1e-7, edited in the allowed number of columns, edited in
twice that (those are other rows, so they pass).

    python benchmarks/near_rows.py            # digits (64 columns), shapes 3×32×32 (3072), 20k rows
"""
from __future__ import annotations

import time

import numpy as np

from alchemist.data.near_rows import allowed_edits, near_count, near_index


def sets():
    from alchemist.data.sources import load_source
    from alchemist.data.synthetic import shapes

    digits = load_source("sklearn:digits", None).frame.drop(columns=["target"]).to_numpy(np.float64)
    yield "digits", (digits - digits.mean(0)) / (digits.std(0) + 1e-9)
    frame, _ = shapes(rows=20000, size=32)
    images = frame.drop(columns=["target"]).to_numpy(np.float32)
    yield "shapes 3x32x32", (images - images.mean(0)) / (images.std(0) + 1e-6)


def edited(X, columns, rng):
    out = X.copy()
    for row in out:
        row[rng.choice(X.shape[1], columns, replace=False)] += 3.0
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    for name, X in sets():
        X = X.astype(np.float32)
        order = rng.permutation(len(X))
        n_test = len(X) // 5
        test, rest = X[order[:n_test]], X[order[n_test:]]
        train, val = rest[: int(len(rest) * 0.8)], rest[int(len(rest) * 0.8):]
        t0 = time.perf_counter()
        index = near_index(test, train, val)
        build = time.perf_counter() - t0

        def count(Q):
            return near_count(Q, index, lambda ids: test[ids])
        t0 = time.perf_counter()
        false_train = count(train)
        scan = time.perf_counter() - t0
        m = allowed_edits(X.shape[1])
        attacks = {"+1e-6 noise": test + rng.normal(0, 1e-6, test.shape).astype(np.float32),
                   "x(1+1e-7)": test * np.float32(1 + 1e-7),
                   f"{m} cols edited": edited(test, m, rng) if m else test,
                   f"{2 * m + 2} cols edited (other rows)": edited(test, 2 * m + 2, rng)}
        print(f"{name}: {len(X)} rows x {X.shape[1]} columns, test {n_test}; index {build:.2f} s "
              f"({len(index['near_keys'])} keys); train scan {scan:.2f} s ({len(train)} rows); "
              f"false alarms: train {false_train}, val {count(val)}")
        for attack, Q in attacks.items():
            print(f"  {attack}: {count(Q)} of {n_test} recognised")


if __name__ == "__main__":
    main()
