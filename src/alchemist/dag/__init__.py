"""Helpers the Snakefile and `workflow/rules/*.smk` call to wire the job graph, in rooms named for
what they hold: checks (the way in), triggers (what reruns a job), plans (reading the search's
plans), lockbox_gate (the final test's gate, the MLflow flags). What the report shows (its
sections, front page and the run's last lines) is alchemist.report's.

Kept cheap on purpose: every cluster job re-parses the workflow, so nothing here trains, samples
or imports torch/mlflow; plans are read from the JSON files the `plan` rules wrote. The rules call
these names as `dag.<name>`.
"""
from alchemist.dag.checks import check_config_file, check_data, check_models, check_or_exit
from alchemist.dag.lockbox_gate import lockbox_gate, quote, tracking_args
from alchemist.dag.plans import (TRAINING_KINDS, measured_packs, pack_split, pack_trials, pack_weights,
                                 plan_packs, read_json, split_suffix, stages)
from alchemist.dag.triggers import (budget_config, command_digest, config_hash, data_files, ledger_digest,
                                    params_file, plan_config)

__all__ = ["TRAINING_KINDS", "budget_config", "check_config_file", "check_data", "check_models",
           "check_or_exit", "command_digest", "config_hash", "data_files", "ledger_digest",
           "lockbox_gate", "measured_packs", "pack_split", "pack_trials", "pack_weights", "params_file",
           "plan_config", "plan_packs", "quote", "read_json", "split_suffix", "stages", "tracking_args"]
