# The test-set lockbox (PB-32). Not part of `rule all`: it runs only when asked for by name AND
# confirmed — `snakemake final_test --config final_test=confirm`. Before any job starts, the
# ledger (results/lockbox/ledger.jsonl, its seal results/data/lockbox.jsonl, MLflow) is checked: a second opening is refused with
# a message citing the first, unless `unseal_reason="..."` gives a new reason (recorded).
# This is the only rule that takes the test split as input.

FINAL_TEST_HELP = """alchemist: final_test evaluates the selected configuration on the TEST set.
The test set can be opened ONCE (PB-32: never tune on test results); the opening is recorded in
results/lockbox/ledger.jsonl and MLflow, and any later attempt is refused.
To proceed:   snakemake final_test --config final_test=confirm"""


def _lockbox_gate(wildcards):
    if config.get("final_test") != "confirm":
        print(FINAL_TEST_HELP, file=sys.stderr)
        sys.exit(3)
    if not SELECTS:
        print("alchemist: final_test needs a select stage in search.stages", file=sys.stderr)
        sys.exit(3)
    dag.lockbox_gate(config, DATA, RESULTS)   # exits 3 with the refusal when sealed
    return []


rule final_test:
    input:
        gate=_lockbox_gate,
        winner=f"{RESULTS}/{SELECTS[-1]}/winner.json" if SELECTS else [],
        test=f"{DATA}/test{SPLIT}",
        manifest=f"{DATA}/prep.json",
    params:
        code=dag.command_digest("final-test"),
        trials=f"{source_dir(SELECTS[-1])}/trials" if SELECTS else "",
        unseal=lambda wc: f"--unseal-reason {dag.quote(config['unseal_reason'])}" if config.get("unseal_reason") else "",
        tracking=dag.tracking_args(config),
        model=f"--model-name {dag.quote(MODEL_NAME)}" if TRACKING else "",
        config_hash=dag.config_hash(config),
    log:
        f"{RESULTS}/logs/final_test.log",
    threads: job_resources.threads(config, "default")
    resources:
        **job_resources.resources(config, "default"),
    conda:
        ENV
    shell:
        "{ALCHEMIST} final-test --confirm --results {RESULTS} --data-dir {DATA} --winner {input.winner} "
        "--trials-dir {params.trials} --out-dir {RESULTS}/test "
        "--ledger {RESULTS}/lockbox/ledger.jsonl --status-file {RESULTS}/lockbox/status.txt "
        "--config-hash {params.config_hash} "
        "{params.unseal} {params.tracking} {params.model} 2>&1 | tee {log}"


rule lockbox_status:
    output:
        report(f"{RESULTS}/lockbox/status.txt", **report_contents.entry("lockbox")),
    params:
        code=dag.command_digest("lockbox"),
        ledger=dag.ledger_digest(f"{RESULTS}/lockbox/ledger.jsonl", f"{DATA}/lockbox.jsonl"),  # reruns when one grows
    log:
        f"{RESULTS}/logs/lockbox_status.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} lockbox --ledger {RESULTS}/lockbox/ledger.jsonl --data-dir {DATA} > {output} 2> {log}"
