"""The peer: the default job as a competent user writes it by hand — one process, PyTorch + Optuna,
no pipeline. Same data handling (20 % test hold-out, train:val 8:2 stratified, z-score with train
statistics, a 50 % coarse subsample), same model (MLP 64-128-10, ReLU, Kaiming init, Adam, batch
64), early stopping on the validation loss (patience 10, best weights restored), same budget:
32 coarse trials x 15 epochs on the subsample (lr, weight decay log-uniform, dropout uniform),
16 fine trials x 30 epochs in ranges narrowed around the top-5, the top-3 x 5 seeds x 40 epochs;
the winner by mean validation accuracy with a 95 % t-interval. With --mlflow every trial is a
nested run with its parameters and every epoch's metrics (SQLite store), as people log them.

    python benchmarks/peer_script.py [--mlflow DIR]
"""
from __future__ import annotations

import argparse
import math
import statistics

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from scipy.stats import t as student_t
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def load():
    X, y = load_digits(return_X_y=True)
    rest, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    train, val = train_test_split(rest, test_size=0.2, random_state=0, stratify=y[rest])
    coarse, _ = train_test_split(train, train_size=0.5, random_state=0, stratify=y[train])
    mean, std = X[train].mean(0), X[train].std(0)
    std[std == 0] = 1
    tensors = lambda idx: (torch.tensor((X[idx] - mean) / std, dtype=torch.float32),  # noqa: E731
                           torch.tensor(y[idx]))
    return tensors(train), tensors(val), tensors(coarse)


def fit(params, data, val, epochs, seed, log=None):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(params["dropout"]), nn.Linear(128, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    (X, y), (Xv, yv) = data, val
    best, best_acc, bad, state = math.inf, 0.0, 0, None
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(y)).split(64):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(Xv)
            val_loss, acc = F.cross_entropy(out, yv).item(), (out.argmax(1) == yv).float().mean().item()
        if log:
            log({"train_loss": loss.item(), "val_loss": val_loss, "val_accuracy": acc}, epoch)
        if val_loss < best:
            best, best_acc, bad, state = val_loss, acc, 0, {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= 10:
                break
    model.load_state_dict(state)
    return best_acc


def study(space, n, data, val, epochs, seed, tracker):
    s = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))

    def objective(trial):
        params = {"lr": trial.suggest_float("lr", *space["lr"], log=True),
                  "weight_decay": trial.suggest_float("weight_decay", *space["weight_decay"], log=True),
                  "dropout": trial.suggest_float("dropout", *space["dropout"])}
        return tracker(params, lambda log: fit(params, data, val, epochs, 0, log))

    s.optimize(objective, n_trials=n)
    return s


def narrowed(trials, wide, k=5, margin=0.1):
    top = sorted(trials, key=lambda t: -t.value)[:k]
    out = {}
    for key, (lo, hi) in wide.items():
        scale = (math.log, math.exp) if key != "dropout" else (float, float)
        span = scale[0](hi) - scale[0](lo)
        vals = [scale[0](t.params[key]) for t in top]
        out[key] = (max(lo, scale[1](min(vals) - margin * span)), min(hi, scale[1](max(vals) + margin * span)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", metavar="DIR", help="log to an MLflow SQLite store in DIR")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train, val, coarse = load()
    if args.mlflow:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{args.mlflow}/mlflow.db")
        mlflow.set_experiment("peer")

        def tracker(params, run):
            with mlflow.start_run(nested=True):
                mlflow.log_params(params)
                value = run(lambda metrics, step: mlflow.log_metrics(metrics, step=step))
                mlflow.log_metric("kept_val_accuracy", value)
                return value
        parent = mlflow.start_run(run_name="peer")
    else:
        def tracker(params, run):
            return run(None)
    wide = {"lr": (1e-4, 3e-2), "weight_decay": (1e-6, 1e-2), "dropout": (0.0, 0.5)}
    first = study(wide, 32, coarse, val, 15, 0, tracker)
    second = study(narrowed(first.trials, wide), 16, train, val, 30, 1, tracker)
    best = sorted(second.trials, key=lambda t: -t.value)[:3]
    results = []
    for t in best:
        values = [tracker(t.params, lambda log, s=s: fit(t.params, train, val, 40, s, log)) for s in range(5)]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        results.append((mean, student_t.ppf(0.975, 4) * sd / math.sqrt(5), t.params))
    if args.mlflow:
        mlflow.end_run()
        del parent
    mean, half, params = max(results, key=lambda r: r[0])
    print(f"winner val_accuracy {mean:.4f} ± {half:.4f} (95% CI, n=5) {params}")


if __name__ == "__main__":
    main()
