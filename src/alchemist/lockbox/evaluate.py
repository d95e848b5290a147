"""The one-time test evaluation (PB-32): the ONLY code that opens the test split. Under a lock
beside the seal it reads every copy of the ledger, asks the policy, records an unseal if one is
given and needed, evaluates every seed of the winner on the test split, and records the opening
in the per-user registry, the seal, the ledger and (when tracking is on) MLflow — before the
result file is written or the result shown.

A crash after an unseal is recorded but before its evaluation is: the unseal stays unused, and
the next attempt (with or without a reason) takes that opening — no result was recorded or
shown, so nothing was looked at. A crash after the evaluation is recorded: the opening counts
(its result is in the event)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from alchemist.analysis.select import load_winner, winner_trial_dirs
from alchemist.analysis.stats import summarise_values
from alchemist.atomic import file_lock, write_text
from alchemist.lockbox.ledger import (LEDGER, Merged, NoRemote, key_of, local_copies, merge_events,
                                      new_event, record_local, seal_lock, source_key)
from alchemist.lockbox.policy import Tampered, decide, status
from alchemist.provenance import code_version

RESULTS = Path("results/test")


def check(data_dir: Path, unseal_reason: str | None, remote, ledger: Path = LEDGER,
          data_cfg: dict | None = None) -> None:
    """Raise policy.Refused when an opening now would be refused (the Snakefile's gate, before
    any job runs); nothing is recorded. Without prepared data (a fresh clone) the key comes
    from the configured source's content, so the per-user registry and MLflow still count."""
    manifest_path = Path(data_dir) / "prep.json"
    if manifest_path.exists():
        key = source_key(json.loads(manifest_path.read_text()))
    elif data_cfg:
        from alchemist.data.prep import source_sha256
        from alchemist.data.sources import file_sha256

        test_file = data_cfg.get("test_file")
        try:
            key = key_of(source_sha256(data_cfg),
                         file_sha256(Path(test_file)) if test_file else None)
        except OSError:
            return                      # no source to key by: prep names the missing file
    else:
        return
    merged = all_events(data_dir, ledger, key, remote)
    decide(merged.events, key, unseal_reason, merged.problems)


def all_events(data_dir: Path, ledger: Path, key: str, remote) -> Merged:
    """Every copy — per-user registry, seal, ledger, MLflow — merged, with any tampering."""
    problems: list[str] = []
    copies = local_copies(data_dir, ledger, key, problems)
    return merge_events({**copies, "MLflow": remote.events(key)}, problems)


def evaluate_winner(data_dir: Path, winner: dict, trial_dirs: list[Path], device: str = "cpu") -> dict:
    """Evaluate every seed of the selected configuration on the test split."""
    from alchemist.data.split_files import read_split
    from alchemist.train.data import host_tensor, read_manifest, target_tensor
    from alchemist.train.evaluate import evaluate

    prep = read_manifest(data_dir)
    X, y, _ = read_split(data_dir, "test", prep.manifest, prep.features)   # the one read of test
    X, y = host_tensor(X), target_tensor(y, prep.task)
    per_trial = {d.name: evaluate(d, X, y, device) for d in trial_dirs}
    test = summarise_values([r["value"] for r in per_trial.values()], winner.get("confidence", 0.95))
    val_mean = winner["mean"]
    return {"metric": next(iter(per_trial.values()))["metric"], "test_mean": test["mean"],
            "test_std": test["std"], "test_ci": test["ci"], "n": test["n"],
            "val_mean": val_mean, "val_to_test_gap": (val_mean - test["mean"])
            if test["mean"] is not None and val_mean is not None else math.nan,
            "per_trial": per_trial, "rows": len(y)}


def open_lockbox(*, data_dir: Path, winner_file: Path | None = None, trials_dir: Path | None = None,
                 out_dir: Path = RESULTS, ledger: Path = LEDGER, unseal_reason: str | None = None,
                 config_hash: str = "", remote=None, device: str = "cpu") -> dict:
    """Check the ledgers, record an unseal if one is given and needed, evaluate, record. Held
    under a lock beside the seal: two attempts at once cannot both be the first opening. The
    winner (alchemist.analysis.select.load_winner) is read only once the opening is allowed."""
    remote = remote or NoRemote()
    manifest = json.loads((Path(data_dir) / "prep.json").read_text())
    key = source_key(manifest)
    with file_lock(seal_lock(data_dir)):
        merged = all_events(data_dir, ledger, key, remote)
        decision = decide(merged.events, key, unseal_reason, merged.problems)  # Refused: cites the first
        if decision.unseal:
            unseal = new_event("unseal", key, reason=decision.unseal["reason"],
                               opening=decision.opening)
            record_local(unseal, data_dir, ledger)
            remote.record(unseal, None)
        winner_file, selection = load_winner(winner_file)
        winner = {**selection["winner"], "confidence": selection.get("confidence", 0.95)}
        result = evaluate_winner(Path(data_dir), winner,
                                 winner_trial_dirs(winner_file, selection, trials_dir), device)
        result_file = Path(out_dir) / f"evaluation-{decision.opening}.json"
        event = new_event(
            "evaluation", key, opening=decision.opening, config_hash=config_hash,
            trial_ids=list(winner["trial_ids"]), config_id=winner["config_id"],
            split_sha256=manifest["splits"]["test"]["row_ids_sha256"],
            test_file_sha256=manifest["splits"]["test"].get("file_sha256"),
            code_version=code_version(), result_file=str(result_file),
            result={k: result[k] for k in ("metric", "test_mean", "test_ci", "n", "val_mean",
                                           "val_to_test_gap")})
        if result_file.exists():          # every copy agreed, yet the file is there: refuse
            raise Tampered(f"lockbox: {result_file} exists but no copy of the ledger records "
                           f"opening #{decision.opening}; refusing to overwrite it")
        # recorded in every local copy BEFORE the result is written or shown: an opening that
        # crashes later still counts (its result is in the event)
        record_local(event, data_dir, ledger)
        write_text(result_file, json.dumps({"event": event, **result}, indent=2, default=str))
        remote.record(event, result_file)
    return {"event": event, "result": result,
            "status": status(all_events(data_dir, ledger, key, remote).events, key)}


def format_result(outcome: dict) -> str:
    r, s = outcome["result"], outcome["status"]
    ci = r["test_ci"]
    interval = f" ± {(ci[1] - ci[0]) / 2:.4f} (95% CI, n={r['n']})" if ci else f" (n={r['n']})"
    lines = [f"TEST {r['metric']}: {r['test_mean']:.4f}{interval}; validation {r['val_mean']:.4f}; "
             f"val→test gap {r['val_to_test_gap']:+.4f}",
             f"lockbox: the test set has now been opened {s['openings']} time(s)"]
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in s["unseals"]]
    return "\n".join(lines)
