"""Data callables a user might write (`data.source: user_data:<name>`), for tests."""
import numpy as np


def blobs():
    """(X, y): 600 two-channel 6×6 'images' whose level says the class."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    return rng.normal(size=(600, 2, 6, 6)) + y[:, None, None, None], y


class Rows:
    """A Dataset of (x, y) pairs (what torch.utils.data.Dataset subclasses provide)."""

    def __init__(self):
        self.X, self.y = blobs()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i].reshape(-1), int(self.y[i])


def rows():
    return Rows()


def broken():
    raise OSError("the shard server is down")


def a_string():
    return "not data"


def tokens():
    """(X, y): 400 token-id sequences (ids 1..5, 0-padded to 10); the label: is id 1 among them."""
    rng = np.random.default_rng(0)
    X = rng.integers(1, 6, (400, 10)) * (np.arange(10)[None] < rng.integers(3, 11, (400, 1)))
    return X, (X == 1).any(1).astype(int)


class RaisesAt7(Rows):
    """A Dataset whose 8th item cannot be read (a corrupt record)."""

    def __getitem__(self, i):
        if i == 7:
            raise KeyError("record 7 is corrupt")
        return super().__getitem__(i)


def raises_at_7():
    return RaisesAt7()
