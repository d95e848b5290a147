"""Pack speed-up and engine overhead on digits (issue 3), and for deep models (issue 21).

Prints, from one run: trial-epochs per second for a pack of 16 trials against the same 16 trials
trained one at a time (each a pack of one), and the engine's single-trial throughput against a
minimal hand-written PyTorch loop (same MLP 64-128-10, Adam, batch 64, per-epoch validation).
Targets on the 2-core CPU: pack >= 5x sequential; engine >= 1.0x the hand loop. Then, for
`rescnn` and `lstm` (benchmarks/deep_packs.py): seconds per trial-epoch and peak MB at K = 1,
`auto` and 8, and the single trial against a hand-written loop; targets: auto <= 1.05x K = 1's
time, the single trial >= 1.0x the hand loop.

Run at 1 torch thread and at the threads the pipeline gives a training job (config.yaml
resources.train.threads, 2 by default): a pack's large element-wise kernels use both cores,
a single trial's small ones do not, so the pack's lead grows with threads. Each ratio is the
median over interleaved rounds of figures measured back to back (this VM drifts by tens of
percent over minutes); the rates printed beside it are the best rounds'.

    python benchmarks/pack_speed.py [--epochs 10] [--threads 1 2] [--clock wall|cpu] [--repeats 5]
                                    [--deep rescnn lstm] [--deep-epochs 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import train_fixtures  # noqa: E402

from alchemist.train.data import load_split, read_manifest  # noqa: E402
from alchemist.train.engine import PackTrainer  # noqa: E402
from alchemist.trial import complete_trials  # noqa: E402


CLOCK = time.perf_counter


def engine_rate(trials, prep, train, val) -> float:
    """Trial-epochs per second of one pack (model building and initial evaluation included)."""
    t0 = CLOCK()
    PackTrainer(trials, prep, train, val, "cpu").fit()
    return len(trials) * trials[0]["epochs"] / (CLOCK() - t0)


def hand_loop_rate(train, val, epochs: int, lr=1e-3, batch=64) -> float:
    """The minimal loop a person writes: nn.Sequential, torch.optim.Adam, randperm batches."""
    t0 = CLOCK()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(train.X.shape[1], 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(train.y))
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            loss = F.cross_entropy(model(train.X[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(val.X)
            F.cross_entropy(out, val.y).item(), (out.argmax(1) == val.y).float().mean().item()
    return epochs / (CLOCK() - t0)


def process_rates(trials, data: Path, tmp: Path, threads: int) -> tuple[float, float]:
    """Trial-epochs per second as the pipeline runs them: the 16 trials as ONE `alchemist train`
    process (a pack job) vs 16 processes of one trial each (a job per trial), start-up included."""
    import json
    import subprocess

    def run(batch: list, name: str) -> float:
        spec = tmp / f"{name}.json"
        spec.write_text(json.dumps(batch))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alchemist", "train", "--trials", str(spec),
                        "--data-dir", str(data), "--out-dir", str(tmp / name), "--device", "cpu",
                        "--threads", str(threads)], check=True, capture_output=True)
        return time.perf_counter() - t0

    epochs = len(trials) * trials[0]["epochs"]
    one = run(trials, "pack")
    many = sum(run([t], f"solo{i}") for i, t in enumerate(trials))
    return epochs / one, epochs / many


def pipeline_threads() -> int:
    """Threads the pipeline gives a training job (config/config.yaml resources.train.threads)."""
    import yaml
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    return int(config["resources"]["train"]["threads"])


def compare(trials, prep, train, val, epochs: int, threads: int, repeats: int) -> None:
    """Both in-process comparisons at one torch thread count over interleaved rounds. This VM's
    speed drifts by tens of percent over minutes, so each round's ratio is taken from figures
    measured back to back (pack, the 16 one at a time, pack again), and the median round counts."""
    torch.set_num_threads(threads)
    pack = lambda: engine_rate(trials, prep, train, val)
    seq = lambda: 16 * epochs / sum(epochs / engine_rate([t], prep, train, val) for t in trials)
    solo = lambda: engine_rate([trials[0] | {"dropout": 0.0}], prep, train, val)
    hand = lambda: hand_loop_rate(train, val, epochs)
    load = os.getloadavg()[0]
    rounds = []
    for _ in range(repeats):
        p1, s, p2 = pack(), seq(), pack()
        o1, h, o2 = solo(), hand(), solo()
        rounds.append({"pack": (p1 + p2) / 2, "seq": s, "solo": (o1 + o2) / 2, "hand": h})
    print(f"threads={threads} (load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for a, b, label_a, label_b, target in (("pack", "seq", "pack of 16", "16 one at a time", 5),
                                           ("solo", "hand", "engine, single trial", "hand-written loop", 1.0)):
        ratios = sorted(r[a] / r[b] for r in rounds)
        best_a, best_b = max(r[a] for r in rounds), max(r[b] for r in rounds)
        print(f"{label_a:>28} {best_a:9.1f}   {label_b:>18} {best_b:9.1f}   ratio median "
              f"{statistics.median(ratios):5.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= {target})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+",
                    help="torch thread counts to compare at (default: 1 and the pipeline's "
                         "resources.train.threads)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time, steadier on a machine others load")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median round's ratio is reported")
    ap.add_argument("--deep", nargs="*", default=["rescnn", "lstm"], help="deep models to add rows for (none: skip)")
    ap.add_argument("--deep-epochs", type=int, default=2)
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    threads = args.threads or sorted({1, pipeline_threads()})
    with tempfile.TemporaryDirectory() as tmp:
        data = train_fixtures.digits(Path(tmp))
        prep = read_manifest(data)
        train, val = load_split(data, "train", prep), load_split(data, "val", prep)
        trials = complete_trials([{"hidden": [128], "optimizer": "adam", "epochs": args.epochs,
                                   "early_stopping": False, "lr": 1e-3 * (1 + i % 4), "seed": i,
                                   "dropout": 0.1 * (i % 3)} for i in range(16)])
        proc_pack, proc_seq = process_rates(trials, data, Path(tmp), threads[-1])
    print(f"epochs={args.epochs} clock={args.clock}; trial-epochs per second (best of {args.repeats} "
          f"interleaved rounds) and the median of the rounds' ratios")
    for n in threads:
        compare(trials, prep, train, val, args.epochs, n, args.repeats)
    print(f"threads={threads[-1]}, as jobs (start-up included, as the pipeline runs them)")
    print(f"{'one pack process':>28} {proc_pack:9.1f}   {'16 processes':>18} {proc_seq:9.1f}   "
          f"ratio {proc_pack / proc_seq:5.2f}x")
    if args.deep:
        import deep_packs
        print(f"deep models, 1 thread, {deep_packs.N_TRIALS} trials x {args.deep_epochs} epochs, "
              f"medians of {min(args.repeats, 3)} interleaved rounds, each run a fresh process:")
        deep_packs.rows(args.deep, args.deep_epochs, min(args.repeats, 3))


if __name__ == "__main__":
    main()
