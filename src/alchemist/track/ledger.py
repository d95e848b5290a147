"""The lockbox ledger's MLflow copy (PB-32): every test-set opening and unseal is also a run in
the experiment, so deleting `results/test/` or the ledger file does not make a second look a
first one. Runs are tagged `alchemist.kind=lockbox`; the event itself is a JSON tag."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from alchemist.track.backend import BackendUnavailable, connect, default_tracking_uri, retry, sqlite_path
from alchemist.trial import canonical_json

KIND, SOURCE, EVENT = "alchemist.kind", "alchemist.lockbox.source", "alchemist.lockbox.event"


class LockboxLedger:
    """The MLflow copy. read_only (tracking off): events are still read when the store exists,
    so `--no-tracking` cannot hide an earlier opening; nothing is written."""

    def __init__(self, tracking_uri: str | None, experiment: str, results_dir: Path,
                 read_only: bool = False):
        self.uri = tracking_uri or default_tracking_uri(Path(results_dir))
        self.experiment, self.read_only = experiment, read_only
        self._connection = None

    def _connect(self):
        if self._connection is None:
            self._connection = connect(self.uri, self.experiment)
        return self._connection

    def events(self, keys) -> list[dict]:
        """Events recorded in MLflow for these test rows, in EVERY experiment of the store (a new
        experiment name hides nothing); [] with a warning if unreachable."""
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        db = sqlite_path(self.uri)
        if db and not db.exists():
            return []                 # no store yet: nothing to read (and none created by reading)
        try:
            client, _ = self._connect()
            from mlflow.entities import ViewType

            experiments = [e.experiment_id for e in retry(client.search_experiments, view_type=ViewType.ALL)]
        except (BackendUnavailable, OSError) as err:
            print(f"alchemist: warning: MLflow unreachable, lockbox checks the ledger file only ({err})",
                  file=sys.stderr)
            return []
        events = []
        for key in keys:
            for start in range(0, len(experiments), 100):
                runs = retry(client.search_runs, experiments[start:start + 100],
                             f"tags.`{KIND}` = 'lockbox' and tags.`{SOURCE}` = '{key}'",
                             run_view_type=ViewType.ALL, max_results=1000)
                events += [json.loads(r.data.tags[EVENT]) for r in runs if EVENT in r.data.tags]
        return events

    def record(self, event: dict, result_file: Path | None) -> None:
        """One run per event: tags (the event as JSON), metrics and the result file."""
        if self.read_only:
            return
        from mlflow.entities import Metric, Param

        client, exp_id = self._connect()
        name = {"evaluation": "lockbox-opening", "unseal": "lockbox-unseal",
                "result": "lockbox-result"}[event["kind"]] + f"-{event['opening']}"
        run = retry(client.create_run, exp_id, run_name=name, tags={
            KIND: "lockbox", SOURCE: event["source_key"], EVENT: canonical_json(event),
            "alchemist.lockbox": event["kind"]})
        result = event.get("result") or {}
        metrics = [Metric(f"test_{k}", float(v), 0, 0) for k, v in
                   (("mean", result.get("test_mean")), ("gap", result.get("val_to_test_gap")))
                   if isinstance(v, (int, float))]
        params = [Param(k, str(event[k])[:500]) for k in ("opening", "config_hash", "code_version",
                                                          "split_sha256", "reason") if k in event]
        retry(client.log_batch, run.info.run_id, metrics=metrics, params=params)
        if result_file is not None and Path(result_file).exists():
            retry(client.log_artifact, run.info.run_id, str(result_file))
        retry(client.set_terminated, run.info.run_id)
