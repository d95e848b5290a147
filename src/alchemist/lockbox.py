"""The test-set lockbox (PB-32): the final test evaluation runs once, and the system proves it.

This is the ONLY module that opens the test split. Every opening is written to an append-only
ledger (`results/lockbox/ledger.jsonl`), to a copy beside the split it guards (the seal,
`results/data/lockbox.jsonl`: no command-line flag points elsewhere) and, when tracking is on, to
MLflow (a run tagged `alchemist.lockbox=evaluation`); all three are read before any opening, the
MLflow copy even with tracking off when the store exists. Events are keyed by the data SOURCE's
hash: a new split seed, new config or new models do not make a second look at the same data a
first one. The only way past is an unseal with a new, non-empty reason; unseals are recorded and
every report counts them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import alchemist
from alchemist.atomic import file_lock, write_text
from alchemist.errors import UserError
from alchemist.trial import canonical_json

LEDGER = Path("results/lockbox/ledger.jsonl")
RESULTS = Path("results/test")
SEAL = "lockbox.jsonl"       # the ledger's copy inside the prepared-data folder


def seal(data_dir: Path) -> Path:
    return Path(data_dir) / SEAL


def local_events(data_dir: Path, ledger: Path) -> list[dict]:
    """Events in the ledger file and in the seal beside the data, merged."""
    return merge_events(read_ledger(ledger), read_ledger(seal(data_dir)))


def record_local(event: dict, data_dir: Path, ledger: Path) -> None:
    for path in dict.fromkeys([Path(ledger), seal(data_dir)]):
        append_ledger(event, path)


def refuse_test_split(path: Path, manifest: dict, who: str, data_dir: Path) -> None:
    """UserError when `path` is this data's test split (by content): only the lockbox reads it.
    A file whose size differs from `data_dir`'s test.parquet is not it: no hash of a big train
    split in every pack job."""
    from alchemist.data.sources import file_sha256

    test_sha = (manifest.get("splits", {}).get("test") or {}).get("file_sha256")
    test_file = Path(data_dir) / "test.parquet"
    if test_file.exists() and test_file.stat().st_size != Path(path).stat().st_size:
        return
    if test_sha and file_sha256(path) == test_sha:
        raise UserError(f"{who} refuses test data ({path}); only the lockbox reads it (PB-32)")


class Refused(UserError):
    """A second look at the test set without an unseal: the message cites the first one."""


def source_key(manifest: dict) -> str:
    """What identifies 'the test set': the source data (and the test file, when separate)."""
    src = manifest["source"]
    return hashlib.sha256(f"{src['sha256']}:{src.get('test_file_sha256')}".encode()).hexdigest()[:16]


def read_ledger(path: Path = LEDGER) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_ledger(event: dict, path: Path = LEDGER) -> None:
    """Append one event and fsync: the ledger only ever grows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(canonical_json(event) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def merge_events(*sources: list[dict]) -> list[dict]:
    """Ledger events from files and MLflow, deduplicated by event id, oldest first."""
    seen: dict[str, dict] = {}
    for events in sources:
        for event in events:
            seen.setdefault(event["event_id"], event)
    return sorted(seen.values(), key=lambda e: e["time"])


@dataclass
class Decision:
    opening: int                 # 1 for the first evaluation, 2 after one unseal, ...
    unseal: dict | None = None   # the unseal event to record before evaluating


def describe(event: dict) -> str:
    result = event.get("result", {})
    where = event.get("result_file", "?")
    value = result.get("test_mean")
    shown = f"{result.get('metric', 'metric')} {value:.4f}" if isinstance(value, float) else "no result"
    return (f"opening #{event['opening']} on {event['time']} of trials "
            f"{', '.join(event.get('trial_ids', [])[:5])} → {shown} ({where})")


def decide(events: list[dict], key: str, unseal_reason: str | None) -> Decision:
    """Allow the first evaluation of this source; refuse later ones unless newly unsealed."""
    mine = [e for e in events if e.get("source_key") == key]
    evaluations = [e for e in mine if e["kind"] == "evaluation"]
    unseals = [e for e in mine if e["kind"] == "unseal"]
    if len(evaluations) <= len(unseals):            # never opened, or an unused unseal
        return Decision(opening=len(evaluations) + 1)
    reason = (unseal_reason or "").strip()
    first = evaluations[0]
    if not reason:
        raise Refused(
            f"the test set was already evaluated ({describe(first)}); "
            f"{len(evaluations)} opening(s) so far. PB-32: evaluate once, never tune on test "
            "results. To re-open it anyway, give a reason: --config unseal_reason=\"...\"")
    used = [u for u in unseals if u.get("reason") == reason]
    if used:
        raise Refused(f"the unseal reason {reason!r} was already used on {used[0]['time']}; "
                      f"each re-opening needs its own reason (first evaluation: {describe(first)})")
    unseal = {"kind": "unseal", "reason": reason, "opening": len(evaluations) + 1}
    return Decision(opening=len(evaluations) + 1, unseal=unseal)


def code_version() -> str:
    """Package version + hash of the package's source files (works without git)."""
    root = Path(alchemist.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return f"{alchemist.__version__}+src.{digest.hexdigest()[:12]}"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_event(kind: str, key: str, **fields) -> dict:
    time = now()
    event_id = hashlib.sha256(f"{kind}:{key}:{time}:{os.getpid()}:{fields}".encode()).hexdigest()[:16]
    return {"kind": kind, "event_id": event_id, "time": time, "source_key": key, **fields}


def status(events: list[dict], key: str | None = None) -> dict:
    """How often the test set was opened and why: shown in every report."""
    mine = [e for e in events if key is None or e.get("source_key") == key]
    return {"openings": sum(e["kind"] == "evaluation" for e in mine),
            "unseals": [{"time": e["time"], "reason": e["reason"]} for e in mine if e["kind"] == "unseal"],
            "evaluations": [{"time": e["time"], "opening": e["opening"],
                             "result_file": e.get("result_file"), "result": e.get("result")}
                            for e in mine if e["kind"] == "evaluation"]}


def format_status(state: dict) -> str:
    lines = [f"lockbox: the test set has been opened {state['openings']} time(s)"]
    for ev in state["evaluations"]:
        r = ev.get("result") or {}
        lines.append(f"  opening #{ev['opening']} on {ev['time']}: {r.get('metric')} "
                     f"{r.get('test_mean')} → {ev['result_file']}")
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in state["unseals"]]
    return "\n".join(lines) + "\n"


def gate_or_exit(data_dir: Path, unseal_reason: str | None, remote_events: Callable[[str], list[dict]],
                 ledger: Path = LEDGER) -> None:
    """Snakefile check before any job runs: print why and exit 3 when the lockbox is sealed."""
    import sys

    manifest_path = Path(data_dir) / "prep.json"
    if not manifest_path.exists():
        return                                   # nothing prepared yet: a first evaluation
    key = source_key(json.loads(manifest_path.read_text()))
    try:
        decide(merge_events(local_events(data_dir, ledger), remote_events(key)), key, unseal_reason)
    except Refused as err:
        print(f"alchemist: lockbox: refused: {err}", file=sys.stderr)
        sys.exit(3)


def t_interval(values: list[float], confidence: float = 0.95) -> dict:
    from alchemist.search.select import summarise_values

    stats = summarise_values(values, confidence)
    return {"n": stats["n"], "mean": stats["mean"], "std": stats["std"], "ci": stats["ci"]}


def evaluate_winner(data_dir: Path, winner: dict, trials_dir: Path, device: str = "cpu") -> dict:
    """Evaluate every seed of the selected configuration on the test split."""
    from alchemist.train.data import frame_tensors, read_manifest
    from alchemist.train.evaluate import evaluate
    import pandas as pd

    prep = read_manifest(data_dir)
    frame = pd.read_parquet(Path(data_dir) / "test.parquet")   # the one read of the test split
    X, y = frame_tensors(frame, prep)
    per_trial = {tid: evaluate(trials_dir / tid, X, y, device) for tid in winner["trial_ids"]}
    values = [r["value"] for r in per_trial.values()]
    test = t_interval(values, winner.get("confidence", 0.95))
    val_mean = winner["mean"]
    return {"metric": next(iter(per_trial.values()))["metric"], "test_mean": test["mean"],
            "test_std": test["std"], "test_ci": test["ci"], "n": test["n"],
            "val_mean": val_mean, "val_to_test_gap": (val_mean - test["mean"])
            if test["mean"] is not None and val_mean is not None else math.nan,
            "per_trial": per_trial, "rows": len(frame)}


class NoRemote:
    """Stand-in when MLflow tracking is off: the ledger file is the only record."""

    def events(self, key: str) -> list[dict]:
        return []

    def record(self, event: dict, result_file: Path | None) -> None:
        return None


def open_lockbox(*, data_dir: Path, winner_file: Path, trials_dir: Path, out_dir: Path = RESULTS,
                 ledger: Path = LEDGER, unseal_reason: str | None = None, config_hash: str = "",
                 remote=None, device: str = "cpu") -> dict:
    """Check the ledgers, record an unseal if one is given and needed, evaluate, record. Held
    under a lock beside the seal: two attempts at once cannot both be the first opening."""
    remote = remote or NoRemote()
    manifest = json.loads((Path(data_dir) / "prep.json").read_text())
    key = source_key(manifest)
    with file_lock(seal(data_dir).with_name(SEAL + ".lock")):
        events = merge_events(local_events(data_dir, ledger), remote.events(key))
        decision = decide(events, key, unseal_reason)          # raises Refused, citing the first
        if decision.unseal:
            unseal = new_event("unseal", key, reason=decision.unseal["reason"],
                               opening=decision.opening)
            record_local(unseal, data_dir, ledger)
            remote.record(unseal, None)
        selection = json.loads(Path(winner_file).read_text())
        winner = {**selection["winner"], "confidence": selection.get("confidence", 0.95)}
        result = evaluate_winner(Path(data_dir), winner, Path(trials_dir), device)
        result_file = Path(out_dir) / f"evaluation-{decision.opening}.json"
        event = new_event(
            "evaluation", key, opening=decision.opening, config_hash=config_hash,
            trial_ids=list(winner["trial_ids"]), config_id=winner["config_id"],
            split_sha256=manifest["splits"]["test"]["row_ids_sha256"],
            test_file_sha256=manifest["splits"]["test"].get("file_sha256"),
            code_version=code_version(), result_file=str(result_file),
            result={k: result[k] for k in ("metric", "test_mean", "test_ci", "n", "val_mean",
                                           "val_to_test_gap")})
        write_text(result_file, json.dumps({"event": event, **result}, indent=2, default=str))
        record_local(event, data_dir, ledger)
        remote.record(event, result_file)
    return {"event": event, "result": result, "status": status(merge_events(
        local_events(data_dir, ledger), remote.events(key)), key)}


def format_result(outcome: dict) -> str:
    r, s = outcome["result"], outcome["status"]
    ci = r["test_ci"]
    interval = f" ± {(ci[1] - ci[0]) / 2:.4f} (95% CI, n={r['n']})" if ci else f" (n={r['n']})"
    lines = [f"TEST {r['metric']}: {r['test_mean']:.4f}{interval}; validation {r['val_mean']:.4f}; "
             f"val→test gap {r['val_to_test_gap']:+.4f}",
             f"lockbox: the test set has now been opened {s['openings']} time(s)"]
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in s["unseals"]]
    return "\n".join(lines)
