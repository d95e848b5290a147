"""Reading the search's plans for the rules: the parsed stages, whether plans measure the pack size,
the prepared splits' suffix, and each round's packs (plan.json, cached by mtime and size — input
functions ask for the same plan once per pack)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def split_suffix(data: dict) -> str:
    """`.parquet` (tables) or `.npz` (array sources): the prepared split files' suffix."""
    from alchemist.data.split_files import split_suffix as suffix

    return suffix(data)


_JSON_CACHE: dict[str, tuple[tuple[int, int], dict]] = {}


def read_json(path: str | Path) -> dict:
    """Parsed JSON, cached by (mtime, size): input functions ask for the same plan per pack."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _JSON_CACHE.get(str(path))
    if cached is None or cached[0] != stamp:
        cached = (stamp, json.loads(Path(path).read_text()))
        _JSON_CACHE[str(path)] = cached
    return cached[1]


def measured_packs(config: dict) -> bool:
    """`search.pack_size: auto`: plans probe the training device, so they run where training
    runs (not as local rules) and wait for the prepared data."""
    return (config.get("search") or {}).get("pack_size", "auto") == "auto"


TRAINING_KINDS = ("search", "halving", "repeat")


def stages(config: dict):
    """The parsed `search.stages` (name → Stage), in config order."""
    from alchemist.search.stages import parse_search

    return parse_search(config).stages


def plan_packs(plan_file: str) -> dict[str, list[str]]:
    """A round's packs (pack id → its trial ids) from its plan.json."""
    return read_json(plan_file)["packs"]


def pack_trials(plan_file: str, pack: str) -> str:
    """The pack's trial ids: its rerun trigger (each id hashes the trial's full settings)."""
    return " ".join(read_json(plan_file)["packs"][pack])


def pack_split(plan_file: str, pack: str) -> str:
    """The split a pack trains on (`train` or `train_coarse`)."""
    plan = read_json(plan_file)
    return plan["trials"][plan["packs"][pack][0]].get("data", "train")


def pack_weights(plan_file: str, pack: str) -> list[str]:
    """The pack's `init_from` weights file (transfer learning) as an input: editing it reruns."""
    plan = read_json(plan_file)
    path = plan["trials"][plan["packs"][pack][0]].get("init_from")
    return [path] if path else []


