"""Models for a pack of K trials: forward takes x of shape (K, B, F) and returns (K, B, out).

Every parameter is a contiguous (K, ...) block of one buffer; dense layers are batched matmuls
(torch.baddbmm), so a pack of MLPs costs about one model's Python overhead; convolutions run in
the layout the device is fastest with (alchemist.train.conv: native per-trial kernels on CPU,
one grouped convolution on CUDA). Each trial draws its init and dropout masks from its own
torch.Generator, so its numbers do not depend on its pack-mates (pack == solo). A custom `module:callable` model is K
instances vectorised with torch.func, or run in a loop when vmap cannot match a solo run
(alchemist.train.custom).

`slots()` lists Slot(param, owners, matrix, stacked): the optimiser, L1 and update-ratio code
treat every slot as a (len(owners), ...) stack, whatever the model.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from alchemist.errors import UserError
from alchemist.train.conv import per_trial_layout, trunk as conv_trunk
from alchemist.train.params import Slot, init_weight_, trial_generator

ACTIVATIONS = {"relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh,
               "sigmoid": torch.sigmoid, "gelu": F.gelu}
IN_PLACE = {"relu": F.relu_, "leaky_relu": F.leaky_relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}
NARROW = 16      # layers with fewer outputs (e.g. the output layer) use the transposed product


def hidden_widths(cfg: dict, n_in: int, n_out: int) -> list[int]:
    """Explicit widths, or PB-8's `auto` rule (one layer, rounded to a multiple of 8)."""
    hidden = cfg["hidden"]
    if hidden == "auto":
        raw = (n_in + n_out) / 2 if cfg.get("auto_width", "mean") == "mean" else 2 * n_in / 3 + n_out
        return [max(8, int(round(raw / 8)) * 8)]
    return [int(h) for h in ([hidden] if isinstance(hidden, int) else hidden)]


def dropout_ps(trials: list[dict], n_layers: int) -> list[list[float]]:
    """Per layer, per trial dropout probability: a float applies to every hidden layer."""
    per_trial = []
    for t in trials:
        d = t["dropout"]
        ps = [float(d)] * n_layers if isinstance(d, (int, float)) else [float(p) for p in d]
        if len(ps) != n_layers or not all(0 <= p < 1 for p in ps):
            raise UserError(f"dropout {d!r}: one value in [0, 1) or one per hidden layer ({n_layers})")
        per_trial.append(ps)
    return [list(col) for col in zip(*per_trial)] if n_layers else []


def drop_columns(ps: list[float], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per trial: a unit whose 16 random bits, read as an int16, reach t = q - 32768 is kept
    (q = round(65536 p) of the 65536 values drop it, so p counts in steps of 1/65536; p = 0 gives
    the lowest int16, which every value reaches, whatever the bits). Returned as t - 1/2 and twice
    the inverted-dropout scale s: clamp(x - (t - 1/2), 0, 1/2) · 2s is exactly 0 or s, float
    arithmetic several times faster on CPU than a compare and a bool-to-float conversion."""
    q = [min(round(p * 65536), 65535) for p in ps]
    below = torch.tensor([v - 32768 - 0.5 for v in q], device=device)
    twice_scale = torch.tensor([2 * 65536 / (65536 - v) for v in q], device=device)
    return below.view(-1, 1, 1), twice_scale.view(-1, 1, 1)


class NarrowLinear(torch.autograd.Function):
    """baddbmm(b, h, w) for a layer with few outputs (the output layer): CPU BLAS is several times
    slower on (B, n) @ (n, <16) than on the transposed product, so forward and the weight gradient
    use that form. The output is a (K, B, n) view of a contiguous (K, n, B) tensor: cross-entropy
    then takes its log-softmax across B (per_trial_loss), another several-fold saving."""

    @staticmethod
    def forward(ctx, h, w, b):
        """h @ w + b as a (K, B, n) view of a contiguous (K, n, B) tensor; saves h and w for backward."""
        ctx.save_for_backward(h, w)
        return torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), h.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def backward(ctx, g):
        """The gradients of h, w and b from g (K, B, n); None for an input that needs none."""
        h, w = ctx.saved_tensors
        gt = g.transpose(1, 2)                    # (K, n, B), contiguous when g came back as made
        gh = torch.bmm(gt.transpose(1, 2), w.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(gt, h).transpose(1, 2) if ctx.needs_input_grad[1] else None
        return gh, gw, gt.sum(2).unsqueeze(1) if ctx.needs_input_grad[2] else None


class PackNet(nn.Module):
    """MLP / residual MLP / small CNN for K trials (`model`: mlp | resmlp | cnn | rescnn)."""

    def __init__(self, trials: list[dict], n_in: int, n_out: int, image_shape=None, device="cpu"):
        super().__init__()
        cfg, K = trials[0], len(trials)
        self.K, self.kind, self.bn = K, cfg["model"], bool(cfg["batch_norm"])
        self.act = ACTIVATIONS.get(cfg["activation"])
        if self.act is None:
            raise UserError(f"unknown activation {cfg['activation']!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.act_ = IN_PLACE.get(cfg["activation"])
        self.specs: list[tuple] = []         # (name, per-trial shape, fan_in, fan_out or fill value)
        self.matrices: list[str] = []
        self.convs: list[str] = []
        if self.kind in ("cnn", "rescnn"):
            if not image_shape:
                raise UserError(f"model {self.kind!r} needs image-shaped inputs (prep.json image_shape)")
            self.image_shape = list(image_shape)
            c, h, w = image_shape
            for i, ch in enumerate(cfg["cnn_channels"]):
                self._conv(f"c{i}", c, ch)
                if self.kind == "rescnn":
                    self._conv(f"r{i}a", ch, ch)
                    self._conv(f"r{i}b", ch, ch)
                c = ch
                if h >= 2 and w >= 2:
                    h, w = h // 2, w // 2
            n_in, self.n_stages = c * h * w, len(cfg["cnn_channels"])
            self.per_trial_convs = per_trial_layout(device)
        widths = hidden_widths(cfg, n_in, n_out)
        if self.kind in ("resmlp",) and len(set(widths)) != 1:
            raise UserError(f"resmlp needs equal hidden widths, got {widths}")
        self.widths = widths
        prev = n_in
        for i, width in enumerate(widths):
            if self.kind == "resmlp":
                self._linear(f"l{i}", prev if i == 0 else width, width, bn=False)
                self._linear(f"r{i}a", width, width, bn=self.bn)
                self._linear(f"r{i}b", width, width, bn=False)
            else:
                self._linear(f"l{i}", prev, width, bn=self.bn)
            prev = width
        self._linear("out", prev, n_out, bn=False)
        self.drop_p = dropout_ps(trials, len(widths))
        self._drop_cols = [drop_columns(ps, device) for ps in self.drop_p]
        self._allocate(trials, torch.device(device))

    def _allocate(self, trials, device):
        """Every parameter is a contiguous (K, ...) block of one buffer `flat`, its grad the same
        block of `flat.grad`: batched matmuls take the parameters as they are (standard strides:
        BLAS takes another route for a strided batch, and a trial's sums would then depend on K),
        and one zero_ clears every gradient."""
        sizes = [self.K * math.prod(shape) for _, shape, *_ in self.specs]
        self.flat = torch.zeros(sum(sizes), device=device)
        self.flat.grad = torch.zeros_like(self.flat)
        gens = [trial_generator(t, "init") for t in trials]
        start = 0
        for (name, shape, fan_in, fan_out), size in zip(self.specs, sizes):
            view = self.flat[start:start + size].view(self.K, *shape)
            if fan_in is None:
                view.fill_(fan_out)
            else:
                for k, (t, g) in enumerate(zip(trials, gens)):
                    view[k].copy_(init_weight_(torch.empty(shape), fan_in, fan_out, t, g))
            param = nn.Parameter(view)
            param.grad = self.flat.grad[start:start + size].view(self.K, *shape)
            self.register_parameter(name, param)
            start += size

    def zero_grad_(self):
        """Clear every gradient at once (zero the shared `flat.grad` buffer; the grads stay allocated)."""
        self.flat.grad.zero_()

    # -- construction ---------------------------------------------------------------------------
    def _linear(self, name: str, fan_in: int, fan_out: int, bn: bool):
        self.specs += [(f"{name}_w", (fan_in, fan_out), fan_in, fan_out), (f"{name}_b", (1, fan_out), None, 0.0)]
        self.matrices.append(f"{name}_w")
        if bn:
            self._batch_norm(name, fan_out)

    def _conv(self, name: str, c_in: int, c_out: int):
        self.specs += [(f"{name}_w", (c_out, c_in, 3, 3), c_in * 9, c_out * 9), (f"{name}_b", (c_out,), None, 0.0)]
        self.matrices.append(f"{name}_w")
        self.convs.append(name)
        if self.bn:
            self._batch_norm(name, c_out)

    def _batch_norm(self, name: str, width: int):
        self.specs += [(f"{name}_g", (width,), None, 1.0), (f"{name}_beta", (width,), None, 0.0)]
        self.register_buffer(f"{name}_mean", torch.zeros(self.K, width))
        self.register_buffer(f"{name}_var", torch.ones(self.K, width))

    def slots(self):
        """Every parameter as a stacked Slot owned by all K trials; weights and conv kernels are matrices."""
        return [Slot(getattr(self, name), list(range(self.K)), name in self.matrices, True, name)
                for name, *_ in self.specs]

    def matrix_slots(self):
        """The weight matrices and conv kernels only, as stacked Slots (what L1 and update ratios use)."""
        return [Slot(getattr(self, n), list(range(self.K)), True, True, n) for n in self.matrices]

    # -- forward --------------------------------------------------------------------------------
    def _lin(self, name: str, h):
        w, b = getattr(self, f"{name}_w"), getattr(self, f"{name}_b")
        if w.shape[-1] < NARROW and not h.is_cuda:
            h = NarrowLinear.apply(h, w, b)       # (K, B, n) view of a (K, n, B) tensor
            if name != "out" or self.bn:
                h = h.contiguous()
        else:
            h = torch.baddbmm(b, h, w)
        return self._norm(name, h) if hasattr(self, f"{name}_mean") else h

    def _norm(self, name: str, h):
        """Batch norm per trial and unit of a dense layer, h is (K, B, C) (convolutions:
        alchemist.train.conv)."""
        g, b = getattr(self, f"{name}_g"), getattr(self, f"{name}_beta")
        mean, var = getattr(self, f"{name}_mean"), getattr(self, f"{name}_var")
        if self.training:
            mu, v = h.mean(1, keepdim=True), h.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = h.shape[1]
                mean.mul_(0.9).add_(mu.squeeze(1), alpha=0.1)
                var.mul_(0.9).add_(v.squeeze(1) * (n / max(n - 1, 1)), alpha=0.1)
        else:
            mu, v = mean.unsqueeze(1), var.unsqueeze(1)
        return (h - mu) * torch.rsqrt(v + 1e-5) * g.unsqueeze(1) + b.unsqueeze(1)

    def _activate(self, h):
        """The activation, in place when h is a fresh tensor (not a view): no new buffer, and
        autograd keeps what it needs (the layers before save their inputs, the activation its output)."""
        return self.act_(h) if self.act_ is not None and not h._is_view() else self.act(h)

    def _dropout(self, h, layer: int, gens):
        """Inverted dropout (PB-19). Each trial draws its mask from its own generator straight into
        its block, 16 random bits a unit (one 64-bit draw covers four units: under a third of the
        time uniform_ takes, which spends a 32-bit draw and a float conversion on every unit); then
        one vectorised keep-and-scale for the pack (drop_columns). A trial with p = 0 draws nothing
        and keeps every unit."""
        ps = self.drop_p[layer]
        if not self.training or not any(ps):
            return h
        n = h[0].numel()
        bits = torch.empty(self.K, -(-n // 4), dtype=torch.int64, device=h.device)
        for k, (p, g) in enumerate(zip(ps, gens)):
            if p:
                bits[k].random_(-2 ** 63, None, generator=g)      # all 64 bits random
        below, twice_scale = self._drop_cols[layer]
        mask = bits.view(torch.int16)[:, :n].view(h.shape).float()      # float32 even under bf16
        return h * mask.sub_(below).clamp_(0, 0.5).mul_(twice_scale).to(h.dtype)   # 0, or the scale

    def forward(self, x, gens=None):
        """Outputs (K, B, n_out) for x (K, B, F); `gens`: each trial's dropout generator, needed only when
        training with dropout."""
        h = x
        if self.convs:
            h = conv_trunk(self, x)          # (K, B, features), alchemist.train.conv
        for i in range(len(self.widths)):
            h = self._activate(self._lin(f"l{i}", h))
            if self.kind == "resmlp":
                r = self._dropout(self._activate(self._lin(f"r{i}a", h)), i, gens)
                h = self._activate(h + self._lin(f"r{i}b", r))
            else:
                h = self._dropout(h, i, gens)
        return self._lin("out", h)

    # -- one trial's weights ----------------------------------------------------------------------
    def trial_state(self, k: int) -> dict:
        """Trial k's parameters and batch-norm statistics by name, detached copies without the K axis."""
        return {n: t[k].detach().clone() for n, t in self.state_dict().items()}

    def load_trial_state(self, k: int, state: dict):
        """Overwrite trial k's parameters and batch-norm statistics with a trial_state() dict."""
        with torch.no_grad():
            for n, t in self.state_dict().items():
                t[k].copy_(state[n])


def build_model(trials: list[dict], n_in: int, n_out: int, image_shape=None, device="cpu",
                sequence: dict | None = None) -> nn.Module:
    """THE model factory: the pack's K trials as one module on `device` — a user's
    `module:factory` (vectorised, alchemist.train.custom), an LSTM/GRU over token ids, or the
    built-in MLP / residual MLP / CNN; (K, batch, n_in) → (K, batch, n_out)."""
    kind = trials[0]["model"]
    if ":" in kind:
        from alchemist.train.custom import build_custom

        return build_custom(trials, n_in, n_out, image_shape).to(device)
    if kind in ("lstm", "gru"):
        from alchemist.train.recurrent import PackRNN

        return PackRNN(trials, n_out, sequence, device)
    if kind not in ("mlp", "resmlp", "cnn", "rescnn"):
        raise UserError(f"unknown model {kind!r}: mlp | resmlp | cnn | rescnn | lstm | gru | "
                        "package.module:callable")
    return PackNet(trials, n_in, n_out, image_shape, device)
