"""The prepared split files (`results/data/<split>.<format>`), the one home of their format.

Tables are written as Parquet (`<split>.parquet`: `_row_id`, the encoded feature columns, `_y`).
Array sources (.npy / .npz / an image folder, alchemist.data.arrays) are written as uncompressed
`.npz` files holding `X` (float32 for tables and images, int64 for token ids; any shape after the
row axis), `y` and `_row_id`. NumPy cannot memory-map a member of an .npz (np.load reads it
whole), so `open_member` maps a STORED member at its offset inside the zip file: a split larger
than the memory a process may use is read page by page, as training draws its rows. Writing
streams too (`NpzWriter`): the header first, then blocks of rows, never the whole split in memory.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

FORMATS = {"parquet": ".parquet", "npz": ".npz"}
ARRAY_SUFFIXES = (".npy", ".npz")


def source_format(data_cfg: dict) -> str:
    """The split format a `data:` config yields, decided at parse time from the source alone:
    array sources (a .npy/.npz file, or a folder of images) give npz, everything else parquet."""
    source = str(data_cfg.get("source") or "")
    if source.startswith(("sklearn:", "synthetic:")):
        return "parquet"
    if source.lower().endswith(ARRAY_SUFFIXES) or Path(source).is_dir():
        return "npz"
    return "parquet"


def split_suffix(data_cfg: dict) -> str:
    """`.parquet` or `.npz`: what the Snakefile's rules name the split files."""
    return FORMATS[source_format(data_cfg)]


def split_path(data_dir: str | Path, name: str, manifest: dict) -> Path:
    """THE path of a prepared split (`<name>.parquet`, or `.npz` for array sources)."""
    return Path(data_dir) / f"{name}{FORMATS[manifest.get('format', 'parquet')]}"


def open_member(path: str | Path, name: str) -> np.ndarray:
    """Array `name` of an .npz (or the array of an .npy when `name` is None): memory-mapped
    read-only when stored uncompressed, else read into memory (a compressed .npz cannot be mapped)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        with archive.open(info) as member:     # the .npy header, to learn dtype, shape, its size
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:            # a newer header version: read it whole
                member.seek(0)
                return np.lib.format.read_array(member, allow_pickle=False)
            shape, fortran, dtype = read_header(member)
            header_size = member.tell()
    with open(path, "rb") as handle:           # the local file header precedes the member's data
        handle.seek(info.header_offset)
        local = handle.read(30)
        data_start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
            int.from_bytes(local[28:30], "little")
    return np.memmap(path, dtype=dtype, mode="r", offset=data_start + header_size, shape=shape,
                     order="F" if fortran else "C")


def member_names(path: str | Path) -> list[str]:
    """The arrays an .npz holds, by name."""
    with zipfile.ZipFile(path) as archive:
        return [n[:-4] for n in archive.namelist() if n.endswith(".npy")]


class NpzWriter:
    """Write an uncompressed .npz member by member; `stream(name, shape, dtype, blocks)` writes a
    big array from an iterator of row blocks (checked against the declared shape)."""

    def __init__(self, path: str | Path):
        self.archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        """Write `array` whole as the archive's member `<name>.npy`."""
        with self.archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)

    def stream(self, name: str, shape: tuple, dtype, blocks) -> None:
        """Write member `<name>.npy` of the declared `shape` and `dtype` from row `blocks`; a ValueError
        when a block's row shape or the total row count differs from `shape`."""
        dtype = np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": tuple(int(s) for s in shape)}
        rows = 0
        with self.archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, header)
            for block in blocks:
                block = np.ascontiguousarray(block, dtype=dtype)
                if block.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"{name}: block of shape {block.shape}, declared {shape}")
                member.write(block.data)
                rows += len(block)
        if rows != shape[0]:
            raise ValueError(f"{name}: {rows} rows written, declared {shape[0]}")

    def close(self) -> None:
        """Close the archive, completing the .npz file."""
        self.archive.close()


def read_split(data_dir: str | Path, name: str, manifest: dict, features: list[str]):
    """(X, y, row ids) of a prepared split: X (N, F) float32 from Parquet (row-major, in the
    manifest's feature order), or the npz's X memory-mapped, rows flattened to (N, F)."""
    path = split_path(data_dir, name, manifest)
    if manifest.get("format", "parquet") == "npz":
        X = open_member(path, "X")
        return X.reshape(len(X), -1), open_member(path, "y"), open_member(path, "_row_id")
    import pandas as pd

    frame = pd.read_parquet(path)
    missing = [c for c in [*features, "_y"] if c not in frame.columns]
    if missing:
        from alchemist.errors import UserError

        raise UserError(f"{path} lacks column(s) {missing[:5]}")
    # pandas hands a block of columns over column-major: gathering mini-batch rows from that is
    # ~7x slower (each row is F strided reads), so the matrix is made row-major here.
    X = np.ascontiguousarray(frame[features].to_numpy("float32"))
    return X, frame["_y"].to_numpy(), frame["_row_id"].to_numpy()
