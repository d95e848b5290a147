"""How many trials share a pack: `search.pack_size: auto` decided from a probe's figures
(alchemist.train.probe measures them on the device that trains). Pure arithmetic on the
figures, so it is tested with fixed ones. (An explicit pack_size is used as given; a pack that
does not fit in memory is split at train time: alchemist.train.pack.)

Figures (a probe's JSON, also written into plan.json under `packing`):
  {"label": "rescnn 3×32×32 batch 64 on cpu (1 thread)", "startup_s": job start-up,
   "limit_mb": the training job's memory, "train_rows", "val_rows", "batch_size",
   "sizes": [{"K", "step_s" (one optimiser step of the whole pack), "eval_s" (one evaluation of
              the validation split), "peak_mb" (the process's peak while training)}, ...]}

Cost model of a group of n trials of E epochs, B batches an epoch, packed K at a time with S
jobs running at once (cores ÷ threads, GPUs × share, or the cluster's --jobs):
  job_s(K) = startup_s + E · (B · step_s(K) + eval_s(K)),  jobs = ⌈n / K⌉,
  makespan(K) = ⌈jobs / S⌉ · job_s(K)   (for K · jobs trials: the last pack may be smaller).
The chosen K fits memory (peak within FILL of the limit), trains within TIE of the fastest
measured speed per trial (job start-ups saved never buy slower steps), and has the least
makespan; a K within TIE of it wins when it spends fewer core-seconds (jobs · job_s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

FILL = 0.85        # a pack's measured peak may use this share of the job's memory (the rest: noise)
TIE = 0.05         # makespans within 5 % count as equal (timings of a few steps are that noisy)


@dataclass(frozen=True)
class Choice:
    K: int
    reason: str
    makespan_s: float | None = None          # the estimate for the group (None: no figures)
    estimates: dict = field(default_factory=dict)   # K -> makespan_s, the sizes considered


def peak_mb(figures: dict, K: int) -> float | None:
    """The pack's peak memory at K: measured, else the least-squares line through the measured
    sizes (base + K × per trial), else unknown."""
    sizes = figures.get("sizes") or []
    for s in sizes:
        if s["K"] == K and s.get("peak_mb") is not None:
            return float(s["peak_mb"])
    base, per_trial = memory_line(figures)
    return None if per_trial is None else base + K * per_trial


def memory_line(figures: dict) -> tuple[float | None, float | None]:
    """(base MB, MB per trial) fitted to the measured peaks; per trial None with < 2 sizes."""
    pts = [(s["K"], s["peak_mb"]) for s in figures.get("sizes") or [] if s.get("peak_mb") is not None]
    if len(pts) < 2:
        return (pts[0][1] if pts else None), None
    mk = sum(k for k, _ in pts) / len(pts)
    mm = sum(m for _, m in pts) / len(pts)
    var = sum((k - mk) ** 2 for k, _ in pts)
    slope = max(sum((k - mk) * (m - mm) for k, m in pts) / var, 0.0) if var else 0.0
    return mm - slope * mk, slope


def fits(figures: dict, K: int, limit_mb: float | None) -> bool:
    """True when K trials' peak stays within FILL of the job's memory (or nothing is known)."""
    if not limit_mb:
        return True
    peak = peak_mb(figures, K)
    return peak is None or K == 1 or peak <= FILL * limit_mb


def job_seconds(size: dict, startup_s: float, epochs: int, batches: int) -> float:
    """Estimated seconds of one packed job: start-up plus `epochs` x (`batches` x step_s + eval_s)."""
    return startup_s + epochs * (batches * size["step_s"] + size.get("eval_s", 0.0))


def makespan(figures: dict, size: dict, n: int, epochs: int, batches: int, slots: int) -> tuple[float, float]:
    """(makespan, core-seconds) of n trials packed size["K"] at a time."""
    jobs = math.ceil(n / size["K"])
    job = job_seconds(size, float(figures.get("startup_s", 0.0)), epochs, batches)
    return math.ceil(jobs / max(slots, 1)) * job, jobs * job


def choose(figures: dict, n: int, epochs: int, batches: int, slots: int,
           limit_mb: float | None = None) -> Choice:
    """`pack_size: auto` for a group of n trials: the measured K with the least makespan."""
    limit = limit_mb if limit_mb is not None else figures.get("limit_mb")
    sizes = [s for s in figures.get("sizes") or [] if s["K"] <= max(n, 1) and s.get("step_s")]
    if not sizes:
        return Choice(1, "no probe figures")
    fitting = [s for s in sizes if fits(figures, s["K"], limit)]
    fastest_step = min((s["step_s"] / s["K"] for s in fitting), default=0.0)
    scored = {s["K"]: makespan(figures, s, n, epochs, batches, slots) for s in fitting
              if s["step_s"] / s["K"] <= fastest_step * (1 + TIE)}
    if not scored:
        return Choice(1, "only one trial fits in memory")
    fastest = min(scored.values())[0]
    near = [k for k, (m, _) in scored.items() if m <= fastest * (1 + TIE)]
    K = min(near, key=lambda k: (scored[k][1], k))
    per_trial = {s["K"]: s["step_s"] / s["K"] for s in sizes}
    if K == 1:
        slower = all(v >= per_trial[1] * (1 - TIE) for v in per_trial.values())
        reason = ("packing is no faster per trial here" if slower and len(per_trial) > 1
                  else "separate jobs finish first on the free slots" if len(scored) > 1
                  else "larger packs do not fit in memory")
    elif 1 in per_trial and per_trial[1] / per_trial[K] >= 1 + TIE:
        reason = f"{per_trial[1] / per_trial[K]:.1f}x the trial-steps per second of one trial"
    else:
        startups = f"fewer job start-ups ({float(figures.get('startup_s', 0)):.1f} s each)"
        ratio = per_trial[K] / per_trial[1] if 1 in per_trial else 1.0
        reason = (f"as fast per trial as K=1, with {startups}" if ratio <= 1 + TIE else
                  f"{ratio:.2f}x slower steps, but {startups} finish first")
    return Choice(K, reason, scored[K][0], {k: round(m, 2) for k, (m, _) in sorted(scored.items())})


def describe(figures: dict, choice: Choice) -> str:
    """The plan's log line: 'rescnn 3×32×32 batch 64 on cpu (1 thread): K=1 0.049 s/step/trial
    (700 MB), K=2 0.049 (820 MB) … → K=1, packing is no faster per trial here'."""
    parts = []
    for s in figures.get("sizes") or []:
        mb = f" ({s['peak_mb']:.0f} MB)" if s.get("peak_mb") is not None else ""
        unit = " s/step/trial" if not parts else ""
        parts.append(f"K={s['K']} {s['step_s'] / s['K']:.4g}{unit}{mb}")
    return f"{figures.get('label', 'probe')}: {', '.join(parts)} → K={choice.K}, {choice.reason}"
