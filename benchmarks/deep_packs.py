"""Packs of deep models (issue 21), the rows benchmarks/pack_speed.py prints for `rescnn` and
`lstm`: seconds per trial-epoch and peak memory at K = 1, at `pack_size: auto` (the probe and
alchemist.packing deciding for these trials, one job at a time) and at K = 8, each measured in a
fresh process (peak RSS is per process); and the engine's single trial against a hand-written
loop of the same model, optimiser and data (nn.Conv2d / nn.LSTM, torch.optim.Adam).

Data: 1,500 images of synthetic:shapes (3×32×32; 960 train) and 1,500 of synthetic:sequences
(20 token ids; 960 train), prepared by `alchemist prep`; batch 64, 1 torch thread.

    python benchmarks/deep_packs.py [--models rescnn lstm] [--epochs 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"rescnn": ("synthetic:shapes:1500", {"model": "rescnn"}),       # (no augmentation: the hand loop has none)
          "lstm": ("synthetic:sequences:1500", {"model": "lstm", "hidden": [64, 128], "grad_clip": 5})}
N_TRIALS = 8


def trials(model: str, epochs: int) -> list[dict]:
    return [{**MODELS[model][1], "lr": 1e-3 * (1 + i % 4), "seed": i, "epochs": epochs,
             "early_stopping": False} for i in range(N_TRIALS)]


def worker(spec: dict) -> dict:
    """In a fresh process: fit `spec['trials']` in packs of spec['K'] (or the hand loop) after
    one untimed epoch of the same path; seconds per trial-epoch (training and evaluation only)
    and the process's peak RSS."""
    import torch

    from alchemist.train.data import load_split, read_manifest
    from alchemist.train.engine import PackTrainer
    from alchemist.trial import complete_trials

    torch.set_num_threads(1)
    data = spec["data"]
    prep = read_manifest(data)
    train, val = load_split(data, "train", prep), load_split(data, "val", prep)
    todo = complete_trials(spec["trials"])
    epochs = todo[0]["epochs"]
    warm = {**todo[0], "epochs": 1}                 # first-call costs (imports, kernels) untimed
    if spec["K"] == "hand":
        hand_loop(spec["model"], warm, prep, train, val, 1)
    else:
        PackTrainer([warm], prep, train, val, "cpu").fit()
    t0 = time.perf_counter()
    if spec["K"] == "hand":
        hand_loop(spec["model"], todo[0], prep, train, val, epochs)
        n = 1
    else:
        for s in range(0, len(todo), spec["K"]):
            PackTrainer(todo[s:s + spec["K"]], prep, train, val, "cpu").fit()
        n = len(todo)
    seconds = time.perf_counter() - t0
    return {"s_per_trial_epoch": seconds / (n * epochs),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def hand_loop(model: str, cfg: dict, prep, train, val, epochs: int) -> None:
    """What a person writes: an nn.Module, Adam, randperm batches, per-epoch validation."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    if model == "rescnn":
        class Res(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

            def forward(self, x):
                return F.relu(x + self.b(F.relu(self.a(x))))
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), Res(16), nn.MaxPool2d(2),
                            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), Res(32), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(2048, 128), nn.ReLU(), nn.Linear(128, 4))
        net = net.to(memory_format=torch.channels_last)
        shape = (-1, *prep.image_shape)
        prepare = lambda x: x.view(shape).contiguous(memory_format=torch.channels_last)  # noqa: E731
    else:
        vocab = prep.manifest["sequence"]["vocab"]

        class Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb, self.rnn, self.out = nn.Embedding(vocab, 64), nn.LSTM(64, 128, batch_first=True), nn.Linear(128, 2)

            def forward(self, x):
                seq, _ = self.rnn(self.emb(x))
                last = ((x > 0) * torch.arange(1, x.shape[1] + 1)).amax(1).clamp(min=1) - 1
                return self.out(seq[torch.arange(len(x)), last])
        net = Seq()
        prepare = lambda x: x.round().long()  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(train.y))
        for s in range(0, len(perm), 64):
            idx = perm[s:s + 64]
            loss = F.cross_entropy(net(prepare(train.X[idx])), train.y[idx])
            opt.zero_grad()
            loss.backward()
            if cfg.get("grad_clip"):
                nn.utils.clip_grad_norm_(net.parameters(), cfg["grad_clip"])
            opt.step()
        net.eval()
        with torch.no_grad():
            out = net(prepare(val.X))
            F.cross_entropy(out, val.y).item(), (out.argmax(1) == val.y).float().mean().item()


def run_worker(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def auto_size(model: str, data: Path, todo: list[dict]) -> tuple[int, str]:
    """What `pack_size: auto` picks for these trials, one job at a time (the probe + packing)."""
    import math

    from alchemist import packing
    from alchemist.search.pack_size import PackSizer
    from alchemist.trial import complete_trials

    trial = complete_trials(todo)[0]
    figures = PackSizer(data, data / "probe", slots=1, limit_mb=6000, threads=1, device="cpu").figures(
        trial, len(todo))
    rows = json.loads((data / "prep.json").read_text())["splits"]["train"]["rows"]
    choice = packing.choose(figures, len(todo), trial["epochs"], math.ceil(rows / 64), 1, 6000)
    return choice.K, packing.describe(figures, choice)


def rows(models: list[str], epochs: int, repeats: int) -> None:
    """Print the rows for each model (what pack_speed.py shows after the MLP figures)."""
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            data = Path(tmp) / model
            subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json",
                            json.dumps({"source": MODELS[model][0]}), "--out", str(data)],
                           check=True, capture_output=True)
            todo = trials(model, epochs)
            K_auto, line = auto_size(model, data, todo)
            print(f"{model}: auto → {line}")
            runs = {"K=1": 1, f"auto (K={K_auto})": K_auto, "K=8": 8, "hand-written loop": "hand"}
            got = {name: [] for name in runs}
            for _ in range(repeats):                            # interleaved: A B C D A B C D
                for name, K in runs.items():
                    got[name].append(run_worker({"data": str(data), "model": model, "K": K,
                                                 "trials": todo[:2] if K == 1 else todo}))
            base = statistics.median(r["s_per_trial_epoch"] for r in got["K=1"])
            for name, rows in got.items():
                s = statistics.median(r["s_per_trial_epoch"] for r in rows)
                ratios = sorted(r["s_per_trial_epoch"] / base for r in rows)
                print(f"  {name:>18}: {s:7.3f} s per trial-epoch  ×{s / base:5.2f} of K=1 "
                      f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})  peak {max(r['peak_mb'] for r in rows):6.0f} MB")
            hand = statistics.median(r["s_per_trial_epoch"] for r in got["hand-written loop"])
            print(f"  engine single trial ÷ hand-written loop speed: {hand / base:.2f}x (target >= 1.0); "
                  f"auto ÷ K=1 time: {statistics.median(r['s_per_trial_epoch'] for r in got[f'auto (K={K_auto})']) / base:.2f} "
                  "(target <= 1.05)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; medians are printed")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    rows(args.models, args.epochs, args.repeats)


if __name__ == "__main__":
    main()
