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


def test_a_full_disk_is_one_line_naming_the_path(tmp_path):
    """prep writing onto a 48 kB tmpfs: one line naming where, exit 1, no traceback, and what the
    folder held before (a finished prep) untouched."""
    import os
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CI and the dev machine run as root)")
    try:
        (disk / "data").mkdir()
        (disk / "data" / "prep.json").write_text("{}")          # an earlier, finished result
        proc = subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json",
                               '{"source": "sklearn:digits", "target": "target"}', "--out", str(disk / "data")],
                              capture_output=True, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "disk full" in lines[0] and str(disk / "data") in lines[0], lines
        assert sorted(p.name for p in (disk / "data").iterdir()) == ["prep.json"]
        assert (disk / "data" / "prep.json").read_text() == "{}"
    finally:
        subprocess.run(["umount", str(disk)], check=True)
