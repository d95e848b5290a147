"""Arguments shared by `lr-find` and `sanity`: one trial's settings and its data."""
from __future__ import annotations

import json
from pathlib import Path


def add_trial_arguments(p) -> None:
    """Shared by lr-find and sanity: which trial settings and data to use."""
    p.add_argument("--data-dir", required=True, help="prepared data (prep.json, train/val parquet)")
    p.add_argument("--trial", help="trial settings: a JSON file or an inline JSON object (defaults fill the rest)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (JSON value)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)


def trial_from_args(trial_file: str | None, sets: list[str] | None) -> dict:
    """One trial for lr-find / sanity: a JSON object file and/or `KEY=JSON` overrides."""
    if trial_file and trial_file.lstrip().startswith("{"):      # inline JSON (what rules pass)
        trial = json.loads(trial_file)
    else:
        trial = json.loads(Path(trial_file).read_text()) if trial_file else {}
    for item in sets or []:
        key, _, value = item.partition("=")
        try:
            trial[key] = json.loads(value)
        except json.JSONDecodeError:
            trial[key] = value
    from alchemist.trial import complete_trials

    return complete_trials([trial])[0]
