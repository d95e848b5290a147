"""The report's text pages: a stage's leaderboard as a page of its own (results/<stage>/
leaderboard.html, shown under "Leaderboards") and the lockbox status (results/lockbox/status.txt,
shown under "Lockbox", printed by `alchemist lockbox`). The tables they show are computed
elsewhere (alchemist.analysis.aggregate, alchemist.lockbox.policy); here is only how they read."""
from __future__ import annotations

import pandas as pd


def leaderboard_page(board: pd.DataFrame, stage: str) -> str:
    """The leaderboard as a page of its own (what `snakemake --report` shows): rank, id, the
    varied settings and the metrics, 4 significant digits; ids of trials and params left to
    the CSV."""
    shown = board.drop(columns=[c for c in ("trial_ids", "params_json", "mode") if c in board])
    table = shown.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}",
                          classes="leaderboard")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{stage} leaderboard</title>"
            f"<style>{_STYLE}</style></head><body><h3>{stage}: configurations ranked by mean over "
            f"their seeds (95% t-interval)</h3>{table}</body></html>\n")


_STYLE = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
          "th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #ddd}"
          "th{background:#f3f3f3} tr:first-child td{font-weight:bold}")


def lockbox_status(state: dict) -> str:
    """The lockbox page (results/lockbox/status.txt, `alchemist lockbox`): openings with their
    results, unseals with their reasons, tampering — from alchemist.lockbox.policy.status."""
    lines = [f"lockbox: the test set has been opened {state['openings']} time(s)"]
    for ev in state["evaluations"]:
        r = ev.get("result") or {}
        lines.append(f"  opening #{ev['opening']} on {ev['time']}: {r.get('metric')} "
                     f"{r.get('test_mean')} → {ev['result_file']}")
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in state["unseals"]]
    lines += [f"  TAMPERING: {p} — every opening is refused" for p in state.get("tampering", [])]
    return "\n".join(lines) + "\n"
