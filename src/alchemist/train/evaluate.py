"""Load a trained trial (`<trial_dir>/model.pt` + `config.json`) and predict or evaluate on given
tensors. The lockbox uses this on the test split; training code never does (PB-32)."""
from __future__ import annotations

from pathlib import Path

import torch

from alchemist.train.data import eval_rows
from alchemist.train.losses import n_outputs, per_trial_loss
from alchemist.train.metrics import PackMetrics, ranking_scores
from alchemist.train.models import build_model


class TrainedTrial:
    def __init__(self, trial_dir: str | Path, device: str = "cpu"):
        saved = torch.load(Path(trial_dir) / "model.pt", map_location=device, weights_only=False)
        self.config, self.loss, self.task = saved["config"], saved["loss"], saved["task"]
        self.scoring = PackMetrics(self.task, self.loss, saved.get("metric"), saved["n_classes"])
        n_out = n_outputs(self.task, self.loss, saved["n_classes"])
        self.model = build_model([self.config], saved["n_inputs"], n_out, saved["image_shape"], device,
                                 saved.get("sequence"))
        self.model.load_trial_state(0, saved["state"])
        self.model.eval()
        self.device = device

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Raw outputs (logits, or values for regression), shape (N, outputs); X is moved to the
        device a block at a time (it may be a memory-mapped split)."""
        chunk = eval_rows(X[0].numel() if len(X) else 1)
        return torch.cat([self.model(X[s:s + chunk].to(self.device, torch.float32).unsqueeze(0))[0]
                          for s in range(0, len(X), chunk)])

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> dict:
        """Unweighted loss, the trial's selection metric (`metric`, `value`) and every other
        metric by name (accuracy, balanced_accuracy, macro_f1, roc_auc; or rmse, r2) on (X, y)."""
        out = self.predict(X).unsqueeze(0)
        y = y.to(self.device).unsqueeze(0)
        n = y.shape[1]
        scores = ranking_scores(out, self.loss) if self.scoring.keeps_scores(1, n) else None
        computed = self.scoring.compute(self.scoring.score(out, y), n, y[0], scores)
        values = {k: float(v[0]) for k, v in computed.items() if k not in ("recall", "metric")}
        return {"loss": float(per_trial_loss(out, y, self.loss)[0]), "metric": self.scoring.metric,
                "value": values[self.scoring.metric], **values, "rows": n}


def evaluate(trial_dir, X, y, device: str = "cpu") -> dict:
    """TrainedTrial(trial_dir).evaluate(X, y): loss, selection metric and every metric, by name."""
    return TrainedTrial(trial_dir, device).evaluate(X, y)


class WinnerModel(torch.nn.Module):
    """The selected configuration as one model: its seeds' outputs averaged — class
    probabilities (a single BCE logit gives [1 - p, p]; cross-entropy a softmax) or regression
    values. (batch, features) → (batch, classes or 1). `alchemist predict` uses it; it is also
    what MLflow logs and registers (mlflow.pytorch)."""

    def __init__(self, trial_dirs: list[str | Path], regression: bool):
        super().__init__()
        self.nets = torch.nn.ModuleList(TrainedTrial(d).model for d in trial_dirs)
        self.regression = regression

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C) from logits (N, C); one BCE logit column gives (N, 2): [1 - p, p]."""
        if logits.shape[1] == 1:
            p1 = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p1, p1], dim=1)
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The seeds' mean output (batch, classes or 1): probabilities, or values for regression."""
        outs = [net(x.unsqueeze(0))[0] for net in self.nets]
        return torch.stack(outs if self.regression else [self.probabilities(o) for o in outs]).mean(0)

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """forward() over X (N, features) a block of rows at a time, without gradients: (N, classes or 1)."""
        chunk = eval_rows(X[0].numel() if len(X) else 1)
        return torch.cat([self(X[s:s + chunk].to(torch.float32)) for s in range(0, len(X), chunk)])
