"""The one atomic-write helper: the old file survives a failed write, and no debris is left."""
from __future__ import annotations

import os
import stat

import pytest

from alchemist.atomic import replacing, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.json"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer died")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"]


def test_replaces_with_the_umask_permissions_and_creates_folders(tmp_path):
    target = tmp_path / "new" / "dir" / "state.pt"
    with replacing(target, fsync=True) as tmp:
        tmp.write_bytes(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask   # not mkstemp's 0600
