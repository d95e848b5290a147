"""The lockbox's records (PB-32): every event is appended to three local copies — the ledger file
(`results/lockbox/ledger.jsonl`), its seal beside the split it guards (`results/data/lockbox.jsonl`,
found from the data folder alone, so no flag points the check elsewhere) and a per-user registry
OUTSIDE results/ (`$XDG_STATE_HOME/alchemist/lockbox/<source_key>.jsonl`, or
`$ALCHEMIST_LOCKBOX_DIR/<source_key>.jsonl`), so a fresh clone or a deleted results/ still
finds the first opening — and to MLflow (alchemist.track.ledger; only track imports mlflow).

Every copy is read and merged by event id: an event in ANY copy counts (a copy may lack the
newest event after a crash between two appends); two copies holding different contents for one
id, an unknown kind or a line that is not JSON is tampering, and refuses (policy.Tampered).

Which lockbox a prepared test split belongs to is decided by its ROWS, not by a file: the test
rows' 64-bit content hashes (alchemist.data.guard: raw feature values, order-free, the same from
CSV or Parquet, int or float) are kept in the registry beside the events (`<key>.rows.npy`), and a
split whose test rows are MATCH or more of an opened lockbox's test rows is that lockbox — the
same table saved in another format, with a row appended or duplicated, in a fresh clone, or split
again with another seed (a fifth of the new test rows were test rows before: the data was seen).
Otherwise its key is the hash of its own rows. Events are stored under `source_key` = that key;
events under the older key (the source file's hash) still count."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alchemist.data.guard import FINGERPRINTS
from alchemist.trial import canonical_json

SEAL = "lockbox.jsonl"       # the ledger's copy inside the prepared-data folder
KINDS = ("evaluation", "unseal", "result")    # an opening, a reason to re-open, an opening's result
MATCH = 0.1                  # share of a split's test rows found in an opened lockbox's: the same one
ROWS = ".rows.npy"


def seal(data_dir: Path) -> Path:
    """The ledger's copy beside the prepared data (results/data/lockbox.jsonl)."""
    return Path(data_dir) / SEAL


def seal_lock(data_dir: Path) -> Path:
    """Held while an opening is decided and recorded: two attempts at once open it once."""
    return Path(data_dir) / (SEAL + ".lock")


def source_key(manifest: dict) -> str:
    """The older key (before rows identified a lockbox): the source file's hash and the test
    file's. Events under it still count."""
    src = manifest["source"]
    return key_of(src["sha256"], src.get("test_file_sha256"))


def key_of(source_sha256: str, test_file_sha256: str | None) -> str:
    """The source-file key of a lockbox (16 hex digits of the two files' hashes)."""
    return hashlib.sha256(f"{source_sha256}:{test_file_sha256}".encode()).hexdigest()[:16]


def registry_dir() -> Path:
    """The per-user registry, outside results/ (see the module docstring)."""
    base = os.environ.get("ALCHEMIST_LOCKBOX_DIR")
    if not base:
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        base = Path(state) / "alchemist" / "lockbox"
    return Path(base)


def registry(key: str) -> Path:
    """The per-user copy of one lockbox's events."""
    return registry_dir() / f"{key}.jsonl"


def registry_lock() -> Path:
    """Held while an opening is decided and recorded, by every clone of every project on this
    machine (openings are rare): two clones racing open one set of test rows once."""
    return registry_dir() / "registry.lock"


def test_rows(data_dir: Path) -> np.ndarray | None:
    """The prepared test rows' content hashes (sorted, unique): raw values where prep kept
    them (tables), else the encoded rows (array sources). None without fingerprints."""
    path = Path(data_dir) / FINGERPRINTS
    if not path.exists():
        return None
    with np.load(path) as stored:
        hashes = stored["raw"] if "raw" in stored.files else stored["encoded"]
    return np.unique(hashes.astype(np.uint64))


def rows_key(hashes: np.ndarray) -> str:
    """The key of a set of test rows: `r` + 15 hex digits of their sorted unique hashes."""
    return "r" + hashlib.sha256(np.unique(hashes.astype(np.uint64)).tobytes()).hexdigest()[:15]


def lockbox_key(hashes: np.ndarray) -> str:
    """The registry key of these test rows: the opened lockbox holding MATCH or more of them
    (the most), else their own hash."""
    best, key = 0.0, None
    directory = registry_dir()
    for rows_file in sorted(directory.glob(f"*{ROWS}")) if directory.exists() else []:
        try:
            known = np.load(rows_file)
        except (OSError, ValueError):
            continue
        share = float(np.isin(hashes, known, assume_unique=True).mean()) if len(hashes) else 0.0
        if share >= MATCH and share > best:
            best, key = share, rows_file.name[:-len(ROWS)]
    return key or rows_key(hashes)


def keys_for(manifest: dict, hashes: np.ndarray | None) -> tuple[str, ...]:
    """(the lockbox's key, the older source key): events under either count; new ones take the first."""
    return tuple(dict.fromkeys([*([lockbox_key(hashes)] if hashes is not None and len(hashes) else []),
                                source_key(manifest)]))


def keep_rows(key: str, hashes: np.ndarray | None) -> None:
    """The lockbox's test rows beside its registry events (written once, atomically)."""
    path = registry_dir() / f"{key}{ROWS}"
    if hashes is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.unique(hashes.astype(np.uint64)))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_ledger(path: Path, problems: list[str] | None = None) -> list[dict]:
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


def append_ledger(event: dict, path: Path) -> None:
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


def local_copies(data_dir: Path, ledger: Path, keys: tuple[str, ...],
                 problems: list[str]) -> dict[str, list[dict]]:
    """{path: events} of the per-user registry (for each key), the seal and the ledger file —
    the least exposed first, so a disagreement keeps its version."""
    paths = dict.fromkeys([*(registry(k) for k in keys), seal(data_dir), Path(ledger)])
    return {str(p): read_ledger(p, problems) for p in paths}


def manifest_keys(data_dir: Path) -> tuple[str, ...]:
    """Every key the prepared data's lockbox may be recorded under (its rows', its source's);
    () before prep."""
    path = Path(data_dir) / "prep.json"
    return keys_for(json.loads(path.read_text()), test_rows(data_dir)) if path.exists() else ()


def local_events(data_dir: Path, ledger: Path, keys: tuple[str, ...] | None = None) -> Merged:
    """Every local copy's events merged, with the tampering found."""
    problems: list[str] = []
    copies = local_copies(data_dir, ledger, keys or manifest_keys(data_dir), problems)
    return merge_events(copies, problems)


def record_local(event: dict, data_dir: Path, ledger: Path, rows: np.ndarray | None = None) -> None:
    """Append to every local copy: the registry first (it outlives results/; with the lockbox's
    test rows beside it), then the seal and the ledger."""
    keep_rows(event["source_key"], rows)
    for path in dict.fromkeys([registry(event["source_key"]), seal(data_dir), Path(ledger)]):
        append_ledger(event, path)


def new_event(kind: str, key: str, **fields) -> dict:
    """A ledger event (`evaluation`, `result`, `unseal`) under `key`, stamped with the time and a
    unique id."""
    time = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    event_id = hashlib.sha256(f"{kind}:{key}:{time}:{os.getpid()}:{fields}".encode()).hexdigest()[:16]
    return {"kind": kind, "event_id": event_id, "time": time, "source_key": key, **fields}


class NoRemote:
    """Stand-in for the MLflow copy when tracking is off: the files are the only record."""

    def events(self, keys) -> list[dict]:
        """No events: there is no MLflow copy to read."""
        return []

    def record(self, event: dict, result_file: Path | None) -> None:
        """Records nothing: the files are the only record."""
        return None
