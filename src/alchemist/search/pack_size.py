"""`search.pack_size: auto` at plan time: for each group of a stage's trials that can share a
pack, the probe's figures (`alchemist probe`, a process of its own on the training device:
alchemist.train.probe; cached in results/probe/) and the decision (alchemist.packing), with one
log line per group and a record for plan.json (`packing`).

The probe runs as a separate process so the plan command never imports torch, and the probe
starts, and is capped in memory, exactly as a training job is. An explicit pack_size never gets
here: it is used as given (a pack that then runs out of memory is split at train time).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Callable

from alchemist import packing
from alchemist.errors import UserError


class PackSizer:
    """K for each group of trials (callable); figures and choices kept in `records`."""

    def __init__(self, data_dir, probe_dir, *, slots: int = 1, limit_mb: float | None = None,
                 threads: int | None = None, device: str = "auto", log: Callable[[str], None] = print):
        self.data_dir, self.probe_dir = Path(data_dir), Path(probe_dir)
        self.slots, self.limit_mb, self.threads, self.device = max(1, slots), limit_mb, threads, device
        self.log, self.records = log, []

    def figures(self, trial: dict, n_max: int) -> dict:
        """The probe's figures for this trial's settings (cached, else measured by the probe)."""
        cmd = [sys.executable, "-m", "alchemist", "probe", "--trial", json.dumps(trial),
               "--data-dir", str(self.data_dir), "--probe-dir", str(self.probe_dir),
               "--n-max", str(n_max), "--device", self.device]
        cmd += ["--mem-mb", str(self.limit_mb)] if self.limit_mb else []
        cmd += ["--threads", str(self.threads)] if self.threads else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise UserError(f"the pack-size probe failed: {last} (set search.pack_size to a number "
                            "to skip it)")
        return json.loads(proc.stdout)

    def __call__(self, group: list[dict]) -> int:
        trial = group[0]
        figures = self.figures(trial, len(group))
        rows = self._rows(trial.get("data", "train")) or figures["train_rows"]
        accum = int(trial["grad_accum"])
        batches = max(1, math.ceil(rows / (int(trial["batch_size"]) * accum)) * accum)
        choice = packing.choose(figures, len(group), int(trial["epochs"]), batches, self.slots, self.limit_mb)
        cached = " (cached)" if figures.get("cached") else ""
        self.log(f"{packing.describe(figures, choice)} ({len(group)} trials, {self.slots} job(s) at "
                 f"once){cached}")
        self.records.append({"trials": len(group), "K": choice.K, "reason": choice.reason,
                             "makespan_s": choice.makespan_s, "estimates": choice.estimates,
                             "slots": self.slots, "figures": figures})
        return choice.K

    def _rows(self, split: str) -> int | None:
        try:
            manifest = json.loads((self.data_dir / "prep.json").read_text())
            return int(manifest["splits"][split]["rows"])
        except (OSError, ValueError, KeyError):
            return None
