# What people look at, one bookkeeping job per stage (`alchemist publish`): the stage's figures,
# drawn once, then the stage synced to MLflow with them (an unreachable server never fails the
# sweep — `alchemist sync` backfills later). Bookkeeping runs at the default priority, below the
# search (CRITICAL), so a free core goes to training first. What `snakemake --report` shows (these
# figures, the leaderboards, the lockbox status, the front page) is decided in alchemist.report.


def _publish_outputs(stage_figures: bool) -> dict:
    out = {"marker": f"{RESULTS}/{{stage}}/mlflow_sync.json"} if TRACKING else {}
    if stage_figures:
        out["figures"] = report(directory(f"{RESULTS}/plots/{{stage}}"), **report_contents.entry("figures"))
    return out


rule publish_stage:
    input:
        table=f"{RESULTS}/{{stage}}/trials.parquet",
        diagnostics=rules.diagnostics.output,   # synced with the stage (--also)
    output:
        **_publish_outputs(stage_figures=True),
    params:
        code=dag.command_digest("publish"),
        tracking=dag.tracking_args(config),
        previous=lambda wc: f"--previous {source_dir(wc.stage)}" if source_dir(wc.stage) else "",
        marker=lambda wc, output: f"--marker {output.marker} --also diagnostics" if TRACKING else "",
    log:
        f"{RESULTS}/logs/publish/{{stage}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} publish --results {RESULTS} --stage {wildcards.stage} --figures-dir {output.figures} "
        "{params.previous} {params.tracking} {params.marker} > {log} 2>&1"


rule publish_selection:
    input:
        winner=f"{RESULTS}/{{select}}/winner.json",
    output:
        marker=f"{RESULTS}/{{select}}/mlflow_sync.json",
    params:
        code=dag.command_digest("publish"),
        tracking=dag.tracking_args(config),
        model=dag.quote(MODEL_NAME),
    log:
        f"{RESULTS}/logs/publish/{{select}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} publish --results {RESULTS} --selection {input.winner} --model-name {params.model} "
        "{params.tracking} --marker {output.marker} > {log} 2>&1"
