# What people look at: MLflow runs (synced from the files after each stage; an unreachable
# server never fails the sweep — `alchemist sync` backfills later), figures, and the
# `snakemake --report results/report.html` page (leaderboards, figures, lockbox status).


def _tracked_input(wildcards):
    if wildcards.tracked == "diagnostics":
        return [f"{RESULTS}/diagnostics/lr_find.parquet", f"{RESULTS}/diagnostics/lr_find.json"]
    return [f"{RESULTS}/{wildcards.tracked}/trials.parquet"]


rule track_stage:
    input:
        files=_tracked_input,
    output:
        f"{RESULTS}/{{tracked}}/mlflow_sync.json",
    params:
        code=dag.command_digest("sync"),
        tracking=dag.tracking_args(config),
    log:
        f"{RESULTS}/logs/track/{{tracked}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} sync --soft --results {RESULTS} --stage {wildcards.tracked} {params.tracking} "
        "--marker {output} > {log} 2>&1"


rule plot_stage:
    input:
        table=f"{RESULTS}/{{stage}}/trials.parquet",
    output:
        report(directory(f"{RESULTS}/plots/{{stage}}"), patterns=["{name}.png"],
               category="Figures", subcategory="{stage}", caption="../report/figures.rst"),
    params:
        code=dag.command_digest("plot"),
        previous=lambda wc: f"--previous {RESULTS}/{STAGES[wc.stage].source}" if STAGES[wc.stage].source else "",
        curves=lambda wc: "--curves" if STAGES[wc.stage].kind == "repeat" else "",   # PB-22
    log:
        f"{RESULTS}/logs/plot/{{stage}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} plot --stage-dir {RESULTS}/{wildcards.stage} --out {output} {params.previous} {params.curves} "
        "> {log} 2>&1"


rule lockbox_status:
    output:
        report(f"{RESULTS}/lockbox/status.txt", category="Lockbox", caption="../report/lockbox.rst"),
    params:
        code=dag.command_digest("lockbox"),
        ledger=dag.ledger_digest(f"{RESULTS}/lockbox/ledger.jsonl", f"{DATA}/lockbox.jsonl"),  # reruns when one grows
    log:
        f"{RESULTS}/logs/lockbox_status.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} lockbox --ledger {RESULTS}/lockbox/ledger.jsonl --data-dir {DATA} > {output} 2> {log}"
