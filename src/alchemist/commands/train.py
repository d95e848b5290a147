"""`alchemist train`: train one pack of trials (docs/architecture.md, "A pack")."""
from __future__ import annotations

import json
from pathlib import Path

from alchemist.errors import UserError
from alchemist.trial import complete_trials, short_hash

HELP = "train a pack of trials (one vectorised model) and write per-trial outputs"


def add_arguments(p) -> None:
    """The options of `alchemist train`: plan and pack (or --trials), data, out folder, done-file, limits."""
    src = p.add_argument_group("which trials (either --plan with --pack, or --trials)")
    src.add_argument("--plan", help="results/<stage>/plan.json")
    src.add_argument("--pack", help="pack id in the plan (or a name for a --trials pack)")
    src.add_argument("--trials", help="JSON list of trial configs (a pack spec); defaults fill the rest")
    p.add_argument("--data-dir", required=True, help="prepared data (prep.json, train/val parquet)")
    p.add_argument("--out-dir", required=True, help="trial directories go here: <out-dir>/<trial_id>/")
    p.add_argument("--done", help="write this JSON when the pack has finished")
    p.add_argument("--device", default="auto", help="auto (trial setting, CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: $ALCHEMIST_THREADS, "
                                               "$SLURM_CPUS_PER_TASK or torch's own)")
    p.add_argument("--gpu-share", type=int, metavar="N",
                   help="on one machine without SLURM: packs per GPU (default: $ALCHEMIST_GPU_SHARE or 1); "
                        "each pack takes a GPU slot, see alchemist.train.gpu_slots")
    p.add_argument("--mem-mb", type=float, help="the job's memory in MiB (resources.train.mem_mb): allocations "
                                                "past it fail here, and the pack is retried as smaller packs")
    p.add_argument("--keep-checkpoint", action="store_true",
                   help="keep <out-dir>/_checkpoints/<pack>.pt after the pack finishes")


def load_pack(plan: str | None, pack: str | None, trials_file: str | None):
    """(pack_id, stage, trials) from `--plan/--pack` or from a JSON list of trial configs."""
    if trials_file:
        raw = json.loads(Path(trials_file).read_text())
        trials = complete_trials(raw if isinstance(raw, list) else [raw])
        return pack or short_hash(sorted(t["trial_id"] for t in trials)), trials[0].get("stage"), trials
    if not (plan and pack):
        raise UserError("give --plan and --pack, or --trials")
    doc = json.loads(Path(plan).read_text())
    if pack not in doc.get("packs", {}):
        raise UserError(f"pack {pack!r} is not in {plan}")
    trials = complete_trials([{**doc["trials"][tid], "trial_id": tid} for tid in doc["packs"][pack]])
    return pack, doc.get("stage"), trials


def run(args) -> int:
    """Train one pack (a GPU slot for auto/cuda) into its trial folders and done-file; returns run_pack's
    exit code: 0, or 143 when stopped by SIGTERM."""
    from alchemist.train.memory import apply_limit
    from alchemist.train.pack import run_pack     # (imports torch)

    apply_limit(args.mem_mb)                 # before anything large is allocated

    pack_id, stage, trials = load_pack(args.plan, args.pack, args.trials)
    device = args.device if args.device != "auto" else trials[0]["device"]
    slot = None
    if device in ("auto", "cuda"):     # before torch touches CUDA; cpu and cuda:N choose for themselves
        from alchemist.train import gpu_slots
        slot = gpu_slots.acquire(args.gpu_share, label=f"pack {pack_id}")
    return run_pack(trials, args.data_dir, args.out_dir, pack_id=pack_id, stage=stage, done=args.done,
                    device=args.device, threads=args.threads, keep_checkpoint=args.keep_checkpoint,
                    gpu=slot.device if slot else None)
