"""The end-of-run summary, one content in three forms: the last lines in the terminal, the
`results/summary.md` file and the report's front page (reStructuredText), written by `write`
after every successful run. It says what was learned, on what data, by which metric, who won
and by how much, and where to look next.

Read from the files the pipeline wrote (prep.json, winner.json, the leaderboards, the MLflow
markers, the lockbox status), with the standard library only: it runs in Snakemake's own process
after every successful run (`onsuccess`), so it costs no job and no heavy import.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alchemist.results_layout import ResultsLayout

#: settings never shown as "differs from the defaults" (places, execution, the repeated seed)
NOT_SHOWN = {"stage", "data", "trial_id", "seed", "device", "checkpoint_every", "bf16"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _interval(c: dict, confidence: float) -> str:
    if c.get("ci_half_width") is None:
        return f"{c['mean']:.4f} (n={c['n']}, no interval)"
    return f"{c['mean']:.4f} ± {c['ci_half_width']:.4f} ({confidence:.0%} CI over n={c['n']} seeds)"


def mlflow_link(results: Path, mlflow: dict) -> str | None:
    """How to open the runs view: the server's URL, or the `mlflow ui` command and its URL."""
    if not mlflow.get("enabled", True):
        return None
    exp = next((s.get("experiment_id") for m in sorted(results.glob("*/mlflow_sync.json"))
                for s in _json(m).get("stages", []) if s.get("experiment_id")), None)
    view = f"#/experiments/{exp}/runs?workflowType=machine_learning" if exp else ""
    uri = mlflow.get("tracking_uri")
    if uri and uri.startswith("http"):
        return f"{uri.rstrip('/')}/{view}"
    store = uri or f"sqlite:///{ResultsLayout(results).store.resolve()}"
    return f"mlflow ui --backend-store-uri {store} --port 5000, then http://127.0.0.1:5000/{view}"


def _lockbox(status: Path) -> str:
    first = status.read_text().splitlines()[0] if status.exists() else ""
    if not first or "opened 0 time" in first:
        return ("lockbox: sealed, the test set has never been opened; when you are done tuning, "
                "`snakemake final_test --config final_test=confirm` evaluates the winner on it once")
    return first


def build(results: Path, config: dict) -> dict | None:
    """The summary's content, or None before any selection has been made."""
    results = Path(results)
    under = ResultsLayout(results)
    winners = under.winners()
    if not winners:
        return None
    selection, prep = _json(winners[-1]), _json(under.data / "prep.json")
    winner, runner = selection["winner"], selection.get("runner_up")
    defaults = config.get("train", {})
    differs = {k: v for k, v in sorted(winner.get("params", {}).items())
               if k not in NOT_SHOWN and defaults.get(k, v) != v}
    val = (prep.get("splits", {}).get("val") or {}).get("class_counts") or {}
    status = under.lockbox_status
    source = selection.get("source") or "?"
    return {
        "task": prep.get("task", "?"), "data": (prep.get("source") or {}).get("name", "?"),
        "rows": {k: prep["splits"][k].get("rows") for k in ("train", "val", "test")
                 if k in prep.get("splits", {})},
        "classes": len(prep.get("classes") or []),
        "majority": max(val.values()) / sum(val.values()) if val else None,
        "metric": selection.get("metric") or "val_metric",
        "why": (prep.get("metric") or {}).get("reason"),
        "rebalance": prep.get("rebalance") or {},
        "baseline": prep.get("baseline"),
        "direction": "higher is better" if selection.get("mode") == "max" else "lower is better",
        "confidence": selection.get("confidence", 0.95), "winner": winner, "runner_up": runner,
        "within_noise": selection.get("within_noise"), "differs": differs,
        "tie_break": (selection.get("tie_break") or {}).get("text"),
        "winner_file": str(winners[-1]), "leaderboard": str(results / source / "leaderboard.csv"),
        "figures": str(results / "plots"), "mlflow": mlflow_link(results, config.get("mlflow", {})),
        "lockbox": _lockbox(status), "budget": budget_used(results, winners[-1]),
        "sync_failed": sync_failures(results, config.get("mlflow", {})),
        "test": test_result(results),
    }


def test_result(results: Path) -> str | None:
    """The lockbox's latest result, once opened: the test metric with its CI, validation and the
    gap, and which opening and file; None while sealed."""
    files = sorted(Path(results).glob("test/evaluation-*.json"),
                   key=lambda p: int(p.stem.rsplit("-", 1)[1]) if p.stem.rsplit("-", 1)[1].isdigit() else 0)
    if not files:
        return None
    r = _json(files[-1])
    ci = r.get("test_ci") or None
    half = f" ± {(ci[1] - ci[0]) / 2:.4f} (95% CI over n={r.get('n')} seeds)" if ci else f" (n={r.get('n')})"
    opening = (r.get("event") or {}).get("opening", files[-1].stem.rsplit("-", 1)[1])
    return (f"TEST {r['metric']}: {r['test_mean']:.4f}{half}; validation {r['val_mean']:.4f}; "
            f"val→test gap {r['val_to_test_gap']:+.4f} (lockbox opening #{opening}: {files[-1]})")


def sync_failures(results: Path, mlflow: dict) -> str | None:
    """One line when a stage's MLflow sync failed (its marker says `synced: false`): which
    stages, why, and the command that backfills them; None when every sync went through."""
    failed = [(m.parent.name, _json(m)) for m in sorted(Path(results).glob("*/mlflow_sync.json"))]
    failed = [(stage, m) for stage, m in failed if m.get("synced") is False]
    if not failed:
        return None
    uri = failed[-1][1].get("tracking_uri") or mlflow.get("tracking_uri") or "<tracking uri>"
    return (f"MLflow sync FAILED for {', '.join(s for s, _ in failed)} ({failed[-1][1].get('reason', '?')}); "
            f"every result is in files; to backfill: alchemist sync --results {results} "
            f"--tracking-uri {uri} --experiment {mlflow.get('experiment', 'alchemist')}")


def budget_used(results: Path, winner: Path) -> str | None:
    """search.budget: what the search used (from the budget plan to the selection) against the
    budget and the estimate, or None without a budget."""
    plan = results / "budget.json"
    if not plan.exists() or not winner.exists():
        return None
    b = _json(plan)
    used = max(winner.stat().st_mtime - plan.stat().st_mtime, 0.0)

    def minutes(seconds: float) -> str:
        return f"{seconds / 60:.1f} min"
    return (f"search budget {minutes(b['budget_s'])}: used {minutes(used)} ({used / b['budget_s']:.0%}; "
            f"estimated {minutes(b['estimate_s'])}) from the budget plan to the selection, "
            "prep and bookkeeping aside")


def lines(s: dict) -> list[str]:
    """The summary as plain lines (terminal and Markdown share them)."""
    w, r, conf = s["winner"], s["runner_up"], s["confidence"]
    rows = ", ".join(f"{k} {v}" for k, v in s["rows"].items())
    out = [f"task: {s['task']} on {s['data']} ({rows} rows"
           + (f", {s['classes']} classes" if s["classes"] else "") + ")",
           f"selection metric: {s['metric']} ({s['direction']})"
           + (f"; {s['why']}" if s.get("why") and s["why"] != "regression" else "")]
    rebalance = s.get("rebalance") or {}
    if rebalance.get("method", "none") != "none":
        out.append(f"training rebalanced: {rebalance['method'].replace('_', ' ')} (PB-4; "
                   f"{rebalance.get('reason', 'data.rebalance')})")
    if s.get("baseline"):
        b = s["baseline"]
        out.append(f"baseline (always predict the {b['predict']}, {b['value']:.4g}): val_rmse {b['val_rmse']:.4f}")
    if s["majority"] is not None:
        out.append(f"majority-class baseline (always the most frequent class): "
                   f"val_accuracy {s['majority']:.4f}, val_balanced_accuracy {1 / max(s['classes'], 2):.4f}")
    out.append(f"WINNER {w['config_id']}: {s['metric']} {_interval(w, conf)}")
    if s.get("tie_break") and "within noise" in s["tie_break"]:
        out.append(f"  chosen how: {s['tie_break']}")
    settings = ", ".join(f"{k}={_fmt(v)}" for k, v in s["differs"].items()) or "the defaults"
    out.append(f"  settings that differ from the defaults: {settings}")
    if s.get("test"):
        out.append(s["test"])
    if r:
        verdict = ("within noise of the winner: the intervals overlap, so the data cannot tell "
                   "them apart" if s["within_noise"] else "clearly behind the winner")
        out.append(f"runner-up {r['config_id']}: {_interval(r, conf)} — {verdict}")
    out.append(f"leaderboard: {s['leaderboard']} · figures: {s['figures']}/ · winner: {s['winner_file']}")
    if s.get("budget"):
        out.append(s["budget"])
    if s["mlflow"]:
        out.append(f"MLflow runs: {s['mlflow']}")
    if s.get("sync_failed"):
        out.append(s["sync_failed"])
    out.append(s["lockbox"])
    return out


def markdown(s: dict) -> str:
    """results/summary.md: the summary's lines as a Markdown list under a title."""
    body = lines(s)
    return "# alchemist: result of the search\n\n" + "\n".join(f"- {line}" for line in body) + "\n"


def rst(s: dict) -> str:
    """The report's front page: a title and the same lines as a bullet list."""
    title = "alchemist: result of the search"
    body = "\n".join(f"* {line.replace('*', chr(92) + '*')}" for line in lines(s))
    return f"{title}\n{'=' * len(title)}\n\n{body}\n"


def write(config: dict, results: str | Path) -> None:
    """After a successful run (the Snakefile's onsuccess): results/summary.md and the report's
    front page (contents.FRONT_PAGE) written, and the summary printed as the run's last lines.
    Nothing before the first selection."""
    from alchemist.atomic import write_text
    from alchemist.report.contents import FRONT_PAGE

    content = build(Path(results), config)
    if content is None:
        return
    write_text(Path(results) / "summary.md", markdown(content))
    write_text(Path(results) / FRONT_PAGE, rst(content))
    print("\n" + "─" * 78 + "\n" + "\n".join(lines(content)) + "\n" + "─" * 78, flush=True)
