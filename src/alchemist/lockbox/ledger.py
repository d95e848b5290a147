"""The lockbox's records (PB-32): every event is appended to three local copies — the ledger file
(`results/lockbox/ledger.jsonl`), its seal beside the split it guards (`results/data/lockbox.jsonl`,
found from the data folder alone, so no flag points the check elsewhere) and a per-user registry
OUTSIDE results/ (`$XDG_STATE_HOME/alchemist/lockbox/<source_key>.jsonl`, or
`$ALCHEMIST_LOCKBOX_DIR/<source_key>.jsonl`), so a fresh clone or a deleted results/ still
finds the first opening — and to MLflow (alchemist.track.ledger; only track imports mlflow).

Every copy is read and merged by event id: an event in ANY copy counts (a copy may lack the
newest event after a crash between two appends); two copies holding different contents for one
id, an unknown kind or a line that is not JSON is tampering, and refuses (policy.Tampered).

Events are keyed by `source_key`, the data SOURCE's hash: a new split seed, config or model does
not make a second look at the same data a first one."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from alchemist.trial import canonical_json

LEDGER = Path("results/lockbox/ledger.jsonl")
SEAL = "lockbox.jsonl"       # the ledger's copy inside the prepared-data folder
KINDS = ("evaluation", "unseal")


def seal(data_dir: Path) -> Path:
    return Path(data_dir) / SEAL


def seal_lock(data_dir: Path) -> Path:
    """Held while an opening is decided and recorded: two attempts at once open it once."""
    return Path(data_dir) / (SEAL + ".lock")


def source_key(manifest: dict) -> str:
    """What identifies 'the test set': the source data (and the test file, when separate)."""
    src = manifest["source"]
    return key_of(src["sha256"], src.get("test_file_sha256"))


def key_of(source_sha256: str, test_file_sha256: str | None) -> str:
    return hashlib.sha256(f"{source_sha256}:{test_file_sha256}".encode()).hexdigest()[:16]


def registry(key: str) -> Path:
    """The per-user copy for one data source, outside results/ (see the module docstring)."""
    base = os.environ.get("ALCHEMIST_LOCKBOX_DIR")
    if not base:
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        base = Path(state) / "alchemist" / "lockbox"
    return Path(base) / f"{key}.jsonl"


def read_ledger(path: Path = LEDGER, problems: list[str] | None = None) -> list[dict]:
    """A copy's events; a line that is not an event (not JSON, unknown kind, no id) is left out
    and described in `problems` (tampering: the caller refuses)."""
    path = Path(path)
    if not path.exists():
        return []
    events = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict) and event.get("kind") in KINDS and "event_id" in event:
            events.append(event)
        elif problems is not None:
            kind = event.get("kind") if isinstance(event, dict) else None
            problems.append(f"{path}:{n} is not a ledger event" + (f" (kind {kind!r})" if kind else ""))
    return events


def append_ledger(event: dict, path: Path = LEDGER) -> None:
    """Append one event and fsync: the ledger only ever grows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(canonical_json(event) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class Merged:
    events: list[dict]                                  # the union by event id, oldest first
    problems: list[str] = field(default_factory=list)   # tampering found on the way


def merge_events(copies: dict[str, list[dict]], problems: list[str] | None = None) -> Merged:
    """The union of every copy's events by id: an event in ANY copy counts. Two copies holding
    different contents under one id is a problem (the valid kinds' version is kept)."""
    problems = list(problems or [])
    seen: dict[str, tuple[str, dict]] = {}
    for where, events in copies.items():
        for event in events:
            first = seen.setdefault(event["event_id"], (where, event))
            if canonical_json(first[1]) != canonical_json(event):
                problems.append(f"{first[0]} and {where} disagree on event {event['event_id']} "
                                f"({first[1].get('kind')} of {first[1].get('time')})")
    return Merged(sorted((e for _, e in seen.values()), key=lambda e: e["time"]), problems)


def local_copies(data_dir: Path, ledger: Path, key: str | None,
                 problems: list[str]) -> dict[str, list[dict]]:
    """{path: events} of the per-user registry (given the source key), the seal and the ledger
    file — the least exposed first, so a disagreement keeps its version."""
    paths = dict.fromkeys([*([registry(key)] if key else []), seal(data_dir), Path(ledger)])
    return {str(p): read_ledger(p, problems) for p in paths}


def manifest_key(data_dir: Path) -> str | None:
    path = Path(data_dir) / "prep.json"
    return source_key(json.loads(path.read_text())) if path.exists() else None


def local_events(data_dir: Path, ledger: Path, key: str | None = None) -> Merged:
    """Every local copy's events merged, with the tampering found."""
    problems: list[str] = []
    copies = local_copies(data_dir, ledger, key or manifest_key(data_dir), problems)
    return merge_events(copies, problems)


def record_local(event: dict, data_dir: Path, ledger: Path) -> None:
    """Append to every local copy: the registry first (it outlives results/), then the seal and
    the ledger."""
    for path in dict.fromkeys([registry(event["source_key"]), seal(data_dir), Path(ledger)]):
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
