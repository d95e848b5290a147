"""Progress across a stage, one line each time one of its packs finishes (the train rule prints
it to the terminal): trials done of the round's total, the best so far by the metric's name and
its trial, and an estimate of the time left from the round's pace so far.

    coarse round 1: 12/32 trials done · best val_accuracy 0.9712 (trial 3f2a…) · 40 s in, ~67 s left

Read from the files the stage writes (its plan, the packs' done-files, the trials' summary.json)
with the standard library only: each training job runs it once, in a fresh process, for ~50 ms.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def stage_line(results: Path, stage: str, round_: int) -> str | None:
    """The progress line of one round of one stage (None before its plan exists)."""
    round_dir = Path(results) / stage / f"round{round_}"
    plan_file = round_dir / "plan.json"
    plan = _json(plan_file)
    if not plan:
        return None
    total = len(plan.get("trials", {}))
    done_files = [_json(p) for p in sorted((round_dir / "packs").glob("*.json"))]
    finished = [tid for d in done_files for tid in d.get("trials", {})]
    best = None
    for tid in finished:
        s = _json(Path(results) / stage / "trials" / tid / "summary.json")
        value = s.get("kept_val_metric")
        if isinstance(value, (int, float)):
            better = best is None or (value < best[0] if s.get("mode") == "min" else value > best[0])
            if better:
                best = (value, tid, s.get("metric", "metric"))
    elapsed = max(time.time() - plan_file.stat().st_mtime, 0.0)
    line = f"{stage} round {round_}: {len(finished)}/{total} trials done"
    if best:
        line += f" · best val_{best[2]} {best[0]:.4f} (trial {best[1]})"
    line += f" · {_duration(elapsed)} in"
    if finished and len(finished) < total:
        line += f", ~{_duration(elapsed / len(finished) * (total - len(finished)))} left"
    return line
