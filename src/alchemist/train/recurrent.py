"""Embedding + LSTM / GRU for K trials at once (`model: lstm | gru`; PB-8, PB-16), on token-id
sequences (prep.json `sequence`: vocabulary size and length; id 0 is padding).

Every parameter is a stacked (K, ...) tensor and every product a batched matmul, so a trial
trains as it would alone (up to float32 summation order: a batched matmul of K may sum in another
order than one of 1, ~1e-6 relative a step) and the pack optimiser sees the same slots as for
the built-in nets. torch.vmap has no batching rule for aten::lstm, hence the cell
written out: the input projection of all time steps is one bmm, then per step one bmm of the
state. Padding (id 0) leaves the state unchanged, so a sequence's last real token gives the
output. `hidden: [E, H]` sets the embedding width E and the recurrent width H (`[H]`: E = H);
the LSTM's forget-gate bias starts at `forget_bias` (default 1; PB-16: remember by default); initialisation as torch's
(uniform ±1/sqrt(H), embeddings N(0, 1)) from each trial's own init stream.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from alchemist.errors import UserError
from alchemist.train.params import Slot, SlotModule, trial_generator

class PackRNN(SlotModule):
    def __init__(self, trials: list[dict], n_out: int, sequence: dict | None, device="cpu"):
        super().__init__()
        cfg, self.K = trials[0], len(trials)
        self.kind = cfg["model"]
        if not sequence:
            raise UserError(f"model {self.kind!r} needs token sequences (a sequence source: prep.json "
                            "`sequence`, e.g. data.source: synthetic:sequences)")
        widths = cfg["hidden"] if isinstance(cfg["hidden"], list) else [128]
        E, H = int(widths[0]), int(widths[-1])
        V, gates = int(sequence["vocab"]), 4 if self.kind == "lstm" else 3
        self.H, self.gates = H, gates
        self.drop_p = [float(t["dropout"]) for t in trials]
        bound = 1 / math.sqrt(H)
        specs = {"emb": ((V, E), None), "w_ih": ((E, gates * H), bound), "w_hh": ((H, gates * H), bound),
                 "b": ((1, gates * H), bound), "out_w": ((H, n_out), bound), "out_b": ((1, n_out), bound)}
        self.names = list(specs)
        gens = [trial_generator(t, "init") for t in trials]
        for name, (shape, b) in specs.items():       # one parameter at a time, each trial's stream
            blocks = []
            for t, g in zip(trials, gens):
                w = torch.empty(shape)
                w.normal_(0, 1, generator=g) if b is None else w.uniform_(-b, b, generator=g)
                if name == "b" and self.kind == "lstm":
                    w[:, H:2 * H] = float(t["forget_bias"])    # gates i, f, g, o: f starts open
                blocks.append(w)
            self.register_parameter(name, nn.Parameter(torch.stack(blocks).to(device)))
        self.fused = torch.device(device).type != "cuda"
        if self.fused:                  # the module whose kernel runs each trial (no own weights used)
            cell = (nn.LSTM if self.kind == "lstm" else nn.GRU)(E, H, batch_first=True)
            object.__setattr__(self, "cell", cell.to(device))      # not a submodule: no parameters

    def slots(self):
        """Every parameter as a stacked Slot owned by all K trials; w_ih, w_hh and out_w are matrices."""
        return [Slot(getattr(self, n), list(range(self.K)), n in ("w_ih", "w_hh", "out_w"), True, n)
                for n in self.names]

    def forward(self, x, gens=None):
        """Outputs (K, B, n_out) for token ids x (K, B, T) (0 = padding), from each sequence's last real
        token; `gens`: each trial's dropout generator, needed only when training with dropout."""
        K, B, T = x.shape
        tokens = x.round().long().clamp_(0, self.emb.shape[1] - 1)
        # a sequence runs up to its last real (non-zero) id: trailing padding leaves the state alone
        lengths = ((tokens > 0) * torch.arange(1, T + 1, device=x.device)).amax(-1)      # (K, B)
        # (K, B, T, E), one lookup per trial: its gradient then sums in an order of its own
        e = [F.embedding(tokens[k], self.emb[k]) for k in range(K)]
        h = self._fused(e, lengths) if self.fused else self._stacked(torch.stack(e), lengths)
        h = self._dropout(h, gens)
        return torch.baddbmm(self.out_b, h, self.out_w)

    def _fused(self, e, lengths):
        """Per trial, torch's own recurrent kernel (nn.LSTM / nn.GRU through functional_call, the
        trial's weights as views of the stacked ones; no bias on the hidden side): on CPU 2-3×
        faster than the step loop below. The state at each sequence's last real token."""
        from torch.func import functional_call

        zero = torch.zeros(self.gates * self.H, device=e[0].device)
        out = []
        for k, ek in enumerate(e):
            weights = {"weight_ih_l0": self.w_ih[k].t(), "weight_hh_l0": self.w_hh[k].t(),
                       "bias_ih_l0": self.b[k, 0], "bias_hh_l0": zero}
            seq, _ = functional_call(self.cell, weights, (ek,))
            at = (lengths[k] - 1).clamp_(min=0)
            last = seq[torch.arange(len(at), device=seq.device), at]
            out.append(torch.where((lengths[k] > 0).unsqueeze(-1), last, torch.zeros_like(last)))
        return torch.stack(out)

    def _stacked(self, e, lengths):
        """All K trials as one batched matmul per time step (on CUDA: one kernel for the pack)."""
        K, B, T, _ = e.shape
        proj = torch.baddbmm(self.b, e.reshape(K, B * T, -1), self.w_ih).view(K, B, T, -1)
        h = e.new_zeros(K, B, self.H)
        c = e.new_zeros(K, B, self.H)
        for t in range(T):
            real = (lengths > t).unsqueeze(-1)
            if self.kind == "lstm":
                i, f, g, o = (proj[:, :, t] + torch.bmm(h, self.w_hh)).chunk(4, -1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
                c = torch.where(real, c_new, c)
            else:                   # GRU (the bias on the input side: n = tanh(x_n + r * W_hn h))
                hh = torch.bmm(h, self.w_hh)
                r, z, n = proj[:, :, t].chunk(3, -1)
                hr, hz, hn = hh.chunk(3, -1)
                r, z = torch.sigmoid(r + hr), torch.sigmoid(z + hz)
                h_new = (1 - z) * torch.tanh(n + r * hn) + z * h
            h = torch.where(real, h_new, h)
        return h

    def _dropout(self, h, gens):
        if not self.training or not any(self.drop_p):
            return h
        masks = [torch.ones(h.shape[1:], device=h.device) if not p else
                 (torch.rand(h.shape[1:], generator=g, device=h.device) >= p).float() / (1 - p)
                 for p, g in zip(self.drop_p, gens)]
        return h * torch.stack(masks)

    def trial_state(self, k: int) -> dict:
        """Trial k's parameters by name, detached copies without the K axis."""
        return {n: getattr(self, n)[k].detach().clone() for n in self.names}

    def load_trial_state(self, k: int, state: dict):
        """Overwrite trial k's parameters with a trial_state() dict; returns None."""
        with torch.no_grad():
            for n in self.names:
                getattr(self, n)[k].copy_(state[n])
