# Search stages (PB-26..PB-31): each round of each stage is a checkpoint that writes plan.json
# (trials + packs); the job graph below it is read from that file, so trial ids exist before
# any training starts. A plan depends on its stage's settings (params), the previous stage's
# table (`from:`) and, for Optuna/halving rounds, the earlier rounds' tables. With
# `search.pack_size: auto` it also reads the prepared data and runs with a training job's
# resources: a short probe there measures how many trials a pack should hold (alchemist.packing);
# figures are cached in results/probe/ for later stages and rounds.


def _previous_table(wildcards):
    source = source_dir(wildcards.stage)
    return [f"{source}/trials.parquet"] if source else []


def _history_tables(wildcards):
    stage, r = STAGES[wildcards.stage], int(wildcards.round)
    first = r - 1 if stage.kind == "halving" else 1   # halving: the last rung; tpe/gp: all rounds
    return [f"{RESULTS}/{wildcards.stage}/round{k}/trials.parquet" for k in range(max(first, 1), r)]


def _budget(wildcards):
    return [f"{RESULTS}/budget.json"] if BUDGET else []


def _probe_data(wildcards):
    if not MEASURED:
        return []
    return [f"{DATA}/prep.json", f"{DATA}/{STAGES[wildcards.stage].data}{SPLIT}", f"{DATA}/val{SPLIT}"]


checkpoint plan_round:
    input:
        previous=_previous_table,
        history=_history_tables,
        data=_probe_data,
        budget=_budget,
    output:
        f"{RESULTS}/{{stage}}/round{{round}}/plan.json",
    params:
        code=dag.command_digest("plan"),
        config=lambda wc: dag.plan_config(config, wc.stage),
        previous=lambda wc, input: f"--previous {input.previous}" if input.previous else "",
        history=lambda wc, input: f"--history {input.history}" if input.history else "",
        budget=lambda wc, input: f"--budget {input.budget}" if input.budget else "",
    priority: CRITICAL
    localrule: not MEASURED
    log:
        f"{RESULTS}/logs/plan/{{stage}}_round{{round}}.log",
    conda:
        ENV
    threads: job_resources.threads(config, "train")
    resources:
        **job_resources.resources(config, "train" if MEASURED else "default"),
    shell:
        "{ALCHEMIST} plan --config {params.config} --stage {wildcards.stage} "
        "--round {wildcards.round} {params.previous} {params.history} {params.budget} --out {output} "
        "--data-dir {DATA} --probe-dir {RESULTS}/probe --mem-mb {resources.mem_mb} "
        "--threads {threads} > {log} 2>&1"


# search.budget: one job sizes every stage to the budget from the probe's figures (printed before
# training, and in the log); the plans take their sizes from budget.json.
rule plan_budget:
    input:
        f"{DATA}/prep.json",
        lambda wc: [f"{DATA}/{STAGES[TRAINING[0]].data}{SPLIT}", f"{DATA}/val{SPLIT}"] if TRAINING else [],
    output:
        f"{RESULTS}/budget.json",
    params:
        code=dag.command_digest("budget"),
        config=lambda wc: dag.budget_config(config),
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/budget.log",
    conda:
        ENV
    threads: job_resources.threads(config, "train")
    resources:
        **job_resources.resources(config, "train"),
    shell:
        "rc=0; {ALCHEMIST} budget --config {params.config} --data-dir {DATA} --probe-dir {RESULTS}/probe "
        "--mem-mb {resources.mem_mb} --threads {threads} --out {output} > {log} 2>&1 || rc=$?; "
        "cat {log} >&2; exit $rc"
