"""The test-split guard (PB-1, PB-32): every reader of prepared data but the lockbox refuses the
test split. A file is the test split when its sha256 equals `prep.json`'s
`splits.test.file_sha256`, whatever its name or folder; a file whose size differs from the data
folder's test.parquet is not it (no full hash of a big train split in every pack job)."""
from __future__ import annotations

from pathlib import Path

from alchemist.data.sources import file_sha256
from alchemist.errors import UserError


def refuse_test_split(path: Path, manifest: dict, who: str, data_dir: Path) -> None:
    """UserError when `path` is this data's test split (by content): only the lockbox reads it."""
    test_sha = (manifest.get("splits", {}).get("test") or {}).get("file_sha256")
    test_file = Path(data_dir) / "test.parquet"
    if test_file.exists() and test_file.stat().st_size != Path(path).stat().st_size:
        return
    if test_sha and file_sha256(Path(path)) == test_sha:
        raise UserError(f"{who} refuses test data ({path}); only the lockbox reads it (PB-32)")
