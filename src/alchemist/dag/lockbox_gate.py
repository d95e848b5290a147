"""The final test's gate and the MLflow options of the rules: a second test-set opening is refused
before any job runs (once per Snakemake process: the gate remembers it passed), and the tracking
flags every rule that talks to MLflow gets, defined here once."""
from __future__ import annotations

import sys
from pathlib import Path


def quote(text: str) -> str:
    """`text` quoted for a rule's shell command."""
    import shlex

    return shlex.quote(str(text))


def tracking_args(config: dict) -> str:
    """The MLflow flags of every command that talks to MLflow (`--no-tracking`, or the URI and the
    experiment), from the `mlflow:` section — defined once."""
    mlflow = config.get("mlflow", {})
    if not mlflow.get("enabled", True):
        return "--no-tracking"
    uri = f"--tracking-uri {quote(mlflow['tracking_uri'])} " if mlflow.get("tracking_uri") else ""
    return f"{uri}--experiment {quote(mlflow.get('experiment', 'alchemist'))}"


class LockboxGate:
    """Checks the lockbox once per Snakemake process (input functions may ask again)."""

    def __init__(self):
        self.passed = False

    def __call__(self, config: dict, data_dir: str, results: str) -> None:
        """Refuse a second test-set opening before any job runs: print why, citing the first
        opening, and exit 3."""
        if self.passed:
            return
        from alchemist.lockbox.evaluate import check
        from alchemist.lockbox.policy import Refused
        from alchemist.results_layout import ResultsLayout
        from alchemist.track.ledger import LockboxLedger

        mlflow = config.get("mlflow", {})      # its copy is read even with tracking off, if it exists
        remote = LockboxLedger(mlflow.get("tracking_uri"), mlflow.get("experiment", "alchemist"),
                               Path(results), read_only=not mlflow.get("enabled", True))
        try:
            check(Path(data_dir), config.get("unseal_reason"), remote,
                  ResultsLayout(Path(results)).ledger, config.get("data"))
        except Refused as err:
            print(f"alchemist: lockbox: refused: {err}", file=sys.stderr)
            sys.exit(3)
        self.passed = True


lockbox_gate = LockboxGate()
