"""The lockbox's records (PB-32): events in an append-only ledger file
(`results/lockbox/ledger.jsonl`) and in its seal beside the split it guards
(`results/data/lockbox.jsonl`, found from the data folder alone, so no flag points the check
elsewhere). The MLflow copy lives in alchemist.track.ledger (only track imports mlflow).

Events are keyed by `source_key`, the data SOURCE's hash: a new split seed, config or model does
not make a second look at the same data a first one."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from alchemist.trial import canonical_json

LEDGER = Path("results/lockbox/ledger.jsonl")
SEAL = "lockbox.jsonl"       # the ledger's copy inside the prepared-data folder


def seal(data_dir: Path) -> Path:
    return Path(data_dir) / SEAL


def seal_lock(data_dir: Path) -> Path:
    """Held while an opening is decided and recorded: two attempts at once open it once."""
    return Path(data_dir) / (SEAL + ".lock")


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


def local_events(data_dir: Path, ledger: Path) -> list[dict]:
    """Events in the ledger file and in the seal beside the data, merged."""
    return merge_events(read_ledger(ledger), read_ledger(seal(data_dir)))


def record_local(event: dict, data_dir: Path, ledger: Path) -> None:
    for path in dict.fromkeys([Path(ledger), seal(data_dir)]):
        append_ledger(event, path)


def new_event(kind: str, key: str, **fields) -> dict:
    time = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    event_id = hashlib.sha256(f"{kind}:{key}:{time}:{os.getpid()}:{fields}".encode()).hexdigest()[:16]
    return {"kind": kind, "event_id": event_id, "time": time, "source_key": key, **fields}


class NoRemote:
    """Stand-in for the MLflow copy when tracking is off: the files are the only record."""

    def events(self, key: str) -> list[dict]:
        return []

    def record(self, event: dict, result_file: Path | None) -> None:
        return None
