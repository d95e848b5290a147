"""The packs of one stage share `trials/_checkpoints/`: two real processes saving and finishing
packs there at once never break each other's saves (a finishing pack used to remove the folder
when it looked empty, while the other was saving into it), and a save that fails warns and lets
training go on."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from alchemist.train import checkpoint as ckpt

WORKER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from alchemist.train import checkpoint as ckpt
    folder, name = Path(sys.argv[1]), sys.argv[2]
    state = {"w": torch.randn(64, 64)}
    for i in range(150):                      # a pack starts, saves, finishes, the next starts
        path = folder / f"{name}-{i}.pt"
        ckpt.save_atomic({"fingerprint": "f", "state": state}, path)
        ckpt.save_atomic({"fingerprint": "f", "state": state}, path)
        assert ckpt.load(path, "f") is not None
        ckpt.discard(path)
    print("ok")
""")


def test_two_processes_save_and_finish_packs_in_one_folder(tmp_path):
    folder = tmp_path / "trials" / "_checkpoints"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(folder), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("packA", "packB")]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for rc, out, err in results:
        assert rc == 0 and out.strip() == "ok", err[-2000:]
    assert folder.is_dir() and not list(folder.iterdir())      # every file gone, the folder kept


def test_a_failing_save_warns_and_training_goes_on(tmp_path, capsys):
    def broken(_trainer):
        raise OSError(28, "No space left on device")

    throttle = ckpt.Throttle(broken)
    assert throttle(object()) is False
    assert "checkpoint not written" in capsys.readouterr().err
    try:
        throttle(object(), force=True)            # SIGTERM: the caller must learn it failed
    except OSError:
        pass
    else:
        raise AssertionError("a forced save that fails must raise")
