"""The stage-level progress line the train rule prints after each pack (alchemist progress)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time


def test_progress_counts_trials_names_the_best_and_estimates_the_rest(tmp_path):
    stage = tmp_path / "results" / "coarse"
    (stage / "round1" / "packs").mkdir(parents=True)
    plan = stage / "round1" / "plan.json"
    plan.write_text(json.dumps({"trials": {t: {} for t in "abcd"}, "packs": {"p": list("ab"), "q": list("cd")}}))
    os.utime(plan, (time.time() - 30, time.time() - 30))             # planned 30 s ago
    (stage / "round1" / "packs" / "p.json").write_text(json.dumps({"trials": {"a": "completed", "b": "diverged"}}))
    for tid, value in (("a", 0.91), ("b", None)):
        (stage / "trials" / tid).mkdir(parents=True)
        (stage / "trials" / tid / "summary.json").write_text(json.dumps(
            {"kept_val_metric": value, "mode": "max", "metric": "balanced_accuracy"}))
    out = subprocess.run([sys.executable, "-m", "alchemist", "progress", "--results", str(tmp_path / "results"),
                          "--stage", "coarse"], capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"alchemist: coarse round 1: 2/4 trials done · best val_balanced_accuracy 0\.9100 "
                        r"\(trial a\) · 3[01] s in, ~3[01] s left", out), out
    nothing = subprocess.run([sys.executable, "-m", "alchemist", "progress", "--results", str(tmp_path),
                              "--stage", "fine"], capture_output=True, text=True, check=True)
    assert nothing.stdout == ""                                       # no plan yet: no line
