"""How a pack computes convolutions and recurrent nets on this device (issue 21): the layouts
alchemist.train.conv and alchemist.train.recurrent choose between, timed per trial at K = 1, 4, 8.

Convolution (3×3, 'same', batch 64, forward + backward of the input and the weights):
  per-trial   one native F.conv2d per trial (NCHW), and the same in channels_last memory order
  grouped     one F.conv2d(groups=K) over (B, K·C, H, W), NCHW and channels_last
  im2col      unfold + one batched matmul (the engine's layout before issue 21)
LSTM (embedding 64, hidden 128, 20 steps, batch 64, forward + backward):
  per-trial   torch's fused LSTM kernel once per trial (through torch.func.functional_call)
  stacked     the cell written out: one batched matmul of the K trials' states per time step

On the 2-core CPU (1 thread) the per-trial layouts win and their cost per trial does not fall
with K: the engine runs them on CPU, the grouped / stacked ones on CUDA (one kernel for the pack).

    python benchmarks/conv_layouts.py [--device cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn


def per_call_ms(fn, device, n: int = 10) -> float:
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / n * 1000


def conv_rows(device, B: int = 64) -> None:
    for C, H in ((16, 32), (32, 16)):
        for K in (1, 4, 8):
            x = torch.randn(B, K * C, H, H, device=device, requires_grad=True)
            xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
            w = torch.randn(K * C, C, 3, 3, device=device, requires_grad=True)
            xs = [torch.randn(B, C, H, H, device=device, requires_grad=True) for _ in range(K)]
            xsc = [t.detach().contiguous(memory_format=torch.channels_last).requires_grad_() for t in xs]
            ws = list(w.detach().view(K, C, C, 3, 3).clone().requires_grad_().unbind(0))

            def per_trial(inputs):
                return lambda: sum(F.conv2d(a, b, padding=1).sum() for a, b in zip(inputs, ws)).backward()

            def grouped(inp):
                return lambda: F.conv2d(inp, w, padding=1, groups=K).sum().backward()

            def im2col():
                cols = F.unfold(x, 3, padding=1).view(B, K, C * 9, H * H).permute(1, 2, 0, 3)
                torch.bmm(w.view(K, C, C * 9), cols.reshape(K, C * 9, B * H * H)).sum().backward()
            layouts = {"per-trial": per_trial(xs), "per-trial CL": per_trial(xsc), "grouped": grouped(x),
                       "grouped CL": grouped(xc), "im2col": im2col}
            cells = " ".join(f"{name} {per_call_ms(fn, device) / K:6.1f}" for name, fn in layouts.items())
            print(f"conv {C:>2} ch {H}×{H} K={K}: ms per trial  {cells}", flush=True)


def lstm_rows(device, B: int = 64, T: int = 20, E: int = 64, H: int = 128) -> None:
    from torch.func import functional_call

    cell = nn.LSTM(E, H, batch_first=True).to(device)
    for K in (1, 4, 8):
        x = torch.randn(K, B, T, E, device=device, requires_grad=True)
        w_ih = torch.randn(K, E, 4 * H, device=device, requires_grad=True)
        w_hh = torch.randn(K, H, 4 * H, device=device, requires_grad=True)
        b = torch.randn(K, 1, 4 * H, device=device, requires_grad=True)
        zero = torch.zeros(4 * H, device=device)

        def per_trial():
            total = 0
            for k in range(K):
                seq, _ = functional_call(cell, {"weight_ih_l0": w_ih[k].t(), "weight_hh_l0": w_hh[k].t(),
                                                "bias_ih_l0": b[k, 0], "bias_hh_l0": zero}, (x[k],))
                total = total + seq[:, -1].sum()
            total.backward()

        def stacked():
            proj = torch.baddbmm(b, x.reshape(K, B * T, E), w_ih).view(K, B, T, -1)
            h = x.new_zeros(K, B, H)
            c = x.new_zeros(K, B, H)
            for t in range(T):
                i, f, g, o = (proj[:, :, t] + torch.bmm(h, w_hh)).chunk(4, -1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            h.sum().backward()
        print(f"lstm {E}→{H}, {T} steps K={K}: ms per trial  per-trial {per_call_ms(per_trial, device) / K:6.1f} "
              f"stacked {per_call_ms(stacked, device) / K:6.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {args.threads} thread(s), torch {torch.__version__}; CL = channels_last")
    conv_rows(device)
    lstm_rows(device)


if __name__ == "__main__":
    main()
