"""The README's image and sequence examples, run as written (issue 21): each in a fresh copy of
the workflow, timed end to end (prep included), with every process's peak resident memory
sampled from /proc every 0.2 s, and the winner's validation metric read from the summary.

Targets on the 2-core, 24 GB CPU machine: each ≤ 15 min, val_accuracy ≥ 0.95, no process above
6 GB RSS.

    python benchmarks/readme_examples.py [--examples shapes sequences] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {   # the README's commands (README.md, "Other built-in data")
    "shapes": ["--config", "data={source: synthetic:shapes}",
               "train={model: rescnn, augment: true, aug_flip: true}", "search={budget: 10m}"],
    "sequences": ["--config", "data={source: synthetic:sequences}",
                  "train={model: lstm, hidden: [64, 128], grad_clip: 5}", "search={budget: 10m}"],
}


class PeakRss(threading.Thread):
    """Samples the resident memory of every process below `root` (by parent pid)."""

    def __init__(self, root: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.every, self.peak, self.peak_cmd, self.done = root, every, 0, "", False

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def run(self) -> None:
        while not self.done:
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
                except (OSError, AttributeError):
                    continue
                if kb > self.peak:
                    self.peak = kb
                    try:
                        self.peak_cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
                    except OSError:
                        pass
            time.sleep(self.every)


def run_example(name: str, where: Path) -> dict:
    wf = where / name
    shutil.copytree(REPO, wf, ignore=shutil.ignore_patterns("results", ".snakemake", ".git", "*.egg-info",
                                                           "__pycache__"))
    env = {**os.environ, "ALCHEMIST_LOCKBOX_DIR": str(where / "lockbox")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(["snakemake", "--cores", "2", *EXAMPLES[name]], cwd=wf, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    monitor = PeakRss(proc.pid)
    monitor.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    monitor.done = True
    winner = re.search(r"WINNER (\w+): (val_\w+) ([0-9.]+) ± ([0-9.]+)", out)
    budget = re.search(r"search budget .*", out)
    return {"rc": proc.returncode, "seconds": seconds, "peak_gb": monitor.peak / 2 ** 20,
            "peak_cmd": monitor.peak_cmd, "winner": winner.groups() if winner else None,
            "budget": budget.group(0) if budget else None,
            "plan": [line for line in out.splitlines() if line.startswith(("budget ", "  coarse", "  repeat",
                                                                            "  estimated"))],
            "tail": out[-3000:] if proc.returncode else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", nargs="+", default=list(EXAMPLES))
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    where = args.keep or Path(tempfile.mkdtemp(prefix="alchemist-examples-"))
    where.mkdir(parents=True, exist_ok=True)
    for name in args.examples:
        r = run_example(name, where)
        print(f"{name}: exit {r['rc']}, {r['seconds'] / 60:.1f} min end to end (prep included), "
              f"peak RSS {r['peak_gb']:.2f} GB ({r['peak_cmd']})")
        for line in r["plan"]:
            print(f"  {line}")
        if r["winner"]:
            cid, metric, mean, ci = r["winner"]
            print(f"  winner {cid}: {metric} {mean} ± {ci}")
        if r["budget"]:
            print(f"  {r['budget']}")
        if r["rc"]:
            print(r["tail"])
    if not args.keep:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
