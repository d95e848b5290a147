"""The convolutional trunk of `cnn` / `rescnn` for K trials, in the layout that is fastest on
the device (benchmarks/pack_speed.py prints both):

* per trial (CPU): each trial's activations are its own (B, C, H, W) tensor in channels_last
  memory order and every layer is one native `F.conv2d` per trial (oneDNN). A trial runs
  exactly the kernels of a solo run, so pack == solo bitwise. On the 2-core CPU a 3×3 conv of
  16 channels at 32×32, batch 64, forward + backward: 9.4 ms a trial this way at any K; one
  grouped conv (groups=K) 11.9 ms at K=1 but 20.1 ms a trial at K=8; im2col + batched matmul
  (the layout before) 120-130 ms.
* grouped (CUDA): activations (B, K·C, H, W) and one `F.conv2d(groups=K)` per layer for the
  whole pack (as HFTA does): one kernel launch per layer instead of K.

Either way the result is (K, B, features) for the dense head (alchemist.train.models.PackNet),
and batch norm keeps per trial and channel statistics in the model's (K, C) buffers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def per_trial_layout(device: torch.device) -> bool:
    """True where per-trial native convolutions beat one grouped convolution (not on CUDA)."""
    return torch.device(device).type != "cuda"


def _conv(net, name: str, h, per_trial: bool):
    w, b = getattr(net, f"{name}_w"), getattr(net, f"{name}_b")
    if per_trial:
        out = [F.conv2d(hk, wk, bk, padding=1) for hk, wk, bk in zip(h, w.unbind(0), b.unbind(0))]
    else:
        out = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=1, groups=net.K)
    return _norm(net, name, out, per_trial) if net.bn else out


def _norm(net, name: str, h, per_trial: bool):
    g, beta = getattr(net, f"{name}_g"), getattr(net, f"{name}_beta")
    mean, var = getattr(net, f"{name}_mean"), getattr(net, f"{name}_var")
    if not per_trial:
        return F.batch_norm(h, mean.view(-1), var.view(-1), g.reshape(-1), beta.reshape(-1),
                            net.training, 0.1, 1e-5)
    return [F.batch_norm(hk, mean[k], var[k], g[k], beta[k], net.training, 0.1, 1e-5)
            for k, hk in enumerate(h)]


def _each(fn, h, per_trial: bool):
    return [fn(hk) for hk in h] if per_trial else fn(h)


def trunk(net, x: torch.Tensor) -> torch.Tensor:
    """x (K, B, C·H·W) → the flattened conv features (K, B, F) of every trial."""
    K, B = x.shape[:2]
    c, hh, ww = net.image_shape
    per_trial = net.per_trial_convs
    if per_trial:
        h = [xk.reshape(B, c, hh, ww).contiguous(memory_format=torch.channels_last) for xk in x]
    else:
        h = x.reshape(K, B, c, hh, ww).transpose(0, 1).reshape(B, K * c, hh, ww)
    for i in range(net.n_stages):
        h = _each(net._activate, _conv(net, f"c{i}", h, per_trial), per_trial)
        if net.kind == "rescnn":
            r = _conv(net, f"r{i}a", h, per_trial)
            r = _conv(net, f"r{i}b", _each(net._activate, r, per_trial), per_trial)
            h = [net._activate(a + b) for a, b in zip(h, r)] if per_trial else net._activate(h + r)
        size = (h[0] if per_trial else h).shape[-2:]
        if size[0] >= 2 and size[1] >= 2:
            h = _each(lambda t: F.max_pool2d(t, 2), h, per_trial)
    if per_trial:
        return torch.stack([hk.reshape(B, -1) for hk in h])
    return h.reshape(B, K, -1).transpose(0, 1)
