"""The one-time test evaluation (PB-32): the ONLY code that opens the test split. Under the
registry's lock (shared by every clone on the machine) and the lock beside the seal, it reads
every copy of the ledger, asks the policy, records an unseal if one is given and needed, records
the opening in the per-user registry, the seal, the ledger and (when tracking is on) MLflow,
and only then evaluates every seed of the winner on the test split; the result is recorded (a
`result` event) before its file is written or it is shown.

A crash after an unseal is recorded but before the opening is: the unseal stays unused, and the
next attempt (with or without a reason) takes that opening. A crash once the opening is recorded
— while evaluating, or before the result file is written — leaves it counted: a missing result
file never means the test set was not looked at."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from alchemist.analysis.select import load_winner, winner_trial_dirs
from alchemist.analysis.stats import summarise_values
from alchemist.atomic import file_lock, write_text
from alchemist.lockbox.ledger import (Merged, NoRemote, keys_for, local_copies, merge_events,
                                      new_event, record_local, registry_lock, seal_lock, test_rows)
from alchemist.lockbox.policy import Tampered, decide, status
from alchemist.provenance import code_version

def check(data_dir: Path, unseal_reason: str | None, remote, ledger: Path,
          data_cfg: dict | None = None) -> None:
    """Raise policy.Refused when an opening now would be refused (the Snakefile's gate, before
    any job runs); nothing is recorded. Without prepared data (a fresh clone) the configured
    data is split in memory, so the registry (by test rows) and MLflow still count."""
    keys = test_keys(data_dir, data_cfg)
    if not keys:
        return
    merged = all_events(data_dir, ledger, keys, remote)
    decide(merged.events, keys, unseal_reason, merged.problems)


def test_keys(data_dir: Path, data_cfg: dict | None = None) -> tuple[str, ...]:
    """The lockbox keys of the prepared test rows, or of those the config would prepare."""
    manifest_path = Path(data_dir) / "prep.json"
    if manifest_path.exists():
        return keys_for(json.loads(manifest_path.read_text()), test_rows(data_dir))
    if not data_cfg:
        return ()
    import copy

    from alchemist.data.prep import prepare
    from alchemist.errors import UserError

    try:
        prepared = prepare(copy.deepcopy(data_cfg))
    except (OSError, UserError):
        return ()                       # prep names the problem when it runs
    found = prepared.fingerprints or {}
    hashes = found.get("raw", found.get("encoded"))
    return keys_for(prepared.manifest, None if hashes is None else np.unique(hashes.astype(np.uint64)))


def all_events(data_dir: Path, ledger: Path, keys: tuple[str, ...], remote) -> Merged:
    """Every copy — per-user registry, seal, ledger, MLflow (every experiment) — merged, with any
    tampering."""
    problems: list[str] = []
    copies = local_copies(data_dir, ledger, keys, problems)
    return merge_events({**copies, "MLflow": remote.events(keys)}, problems)


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


def final_test(*, data_dir: Path, winner_file: Path, out_dir: Path, ledger: Path,
               trials_dir: Path | None = None, unseal_reason: str | None = None,
               config_hash: str = "", remote=None, device: str = "cpu") -> dict:
    """Check the ledgers, record an unseal if one is given and needed, evaluate, record. Held
    under a lock beside the seal: two attempts at once cannot both be the first opening. The
    winner (alchemist.analysis.select.load_winner) is read only once the opening is allowed."""
    remote = remote or NoRemote()
    manifest = json.loads((Path(data_dir) / "prep.json").read_text())
    rows = test_rows(data_dir)
    with file_lock(registry_lock()), file_lock(seal_lock(data_dir)):
        keys = keys_for(manifest, rows)           # inside the lock: another clone may just have opened
        key = keys[0]
        merged = all_events(data_dir, ledger, keys, remote)
        decision = decide(merged.events, keys, unseal_reason, merged.problems)  # Refused: cites the first
        winner_file, selection = load_winner(winner_file)
        winner = {**selection["winner"], "confidence": selection.get("confidence", 0.95)}
        trial_dirs = winner_trial_dirs(winner_file, selection, trials_dir)
        result_file = Path(out_dir) / f"evaluation-{decision.opening}.json"
        if result_file.exists():          # every copy agreed, yet the file is there: refuse, unread
            raise Tampered(f"lockbox: {result_file} exists but no copy of the ledger records "
                           f"opening #{decision.opening}; refusing to overwrite it")
        if decision.unseal:
            unseal = new_event("unseal", key, reason=decision.unseal["reason"],
                               opening=decision.opening)
            record_local(unseal, data_dir, ledger, rows)
            remote.record(unseal, None)
        opening = new_event(
            "evaluation", key, opening=decision.opening, config_hash=config_hash,
            trial_ids=list(winner["trial_ids"]), config_id=winner["config_id"],
            split_sha256=manifest["splits"]["test"]["row_ids_sha256"],
            test_file_sha256=manifest["splits"]["test"].get("file_sha256"),
            code_version=code_version(), result_file=str(result_file), result=None)
        # recorded in every copy BEFORE the test split is read: an opening that crashes later
        # (while evaluating, before the result is written) still counts
        record_local(opening, data_dir, ledger, rows)
        remote.record(opening, None)
        result = evaluate_winner(Path(data_dir), winner, trial_dirs, device)
        event = new_event("result", key, opening=decision.opening, of=opening["event_id"],
                          result_file=str(result_file),
                          result={k: result[k] for k in ("metric", "test_mean", "test_ci", "n",
                                                         "val_mean", "val_to_test_gap")})
        record_local(event, data_dir, ledger, rows)
        write_text(result_file, json.dumps({"event": {**opening, "result": event["result"]}, **result},
                                           indent=2, default=str))
        remote.record(event, result_file)
    return {"event": {**opening, "result": event["result"]}, "result": result, "winner_file": winner_file,
            "status": status(all_events(data_dir, ledger, keys, remote).events, keys)}


def format_result(outcome: dict) -> str:
    """The final test's console text: test metric ± CI, validation, the gap, openings and unseal reasons."""
    r, s = outcome["result"], outcome["status"]
    ci = r["test_ci"]
    interval = f" ± {(ci[1] - ci[0]) / 2:.4f} (95% CI, n={r['n']})" if ci else f" (n={r['n']})"
    lines = [f"TEST {r['metric']}: {r['test_mean']:.4f}{interval}; validation {r['val_mean']:.4f}; "
             f"val→test gap {r['val_to_test_gap']:+.4f}",
             f"lockbox: the test set has now been opened {s['openings']} time(s)"]
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in s["unseals"]]
    return "\n".join(lines)
