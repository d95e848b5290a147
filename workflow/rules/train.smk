# One job per pack: K trials trained together as one vectorised model (PB-26). The pack's trial
# configs and a hash of the engine's code are the rerun triggers (params); the data splits (and an
# `init_from` weights file) are inputs.


def _plan_of(wildcards):
    return checkpoints.plan_round.get(stage=wildcards.stage, round=wildcards.round).output[0]


def _pack_data(wildcards):
    plan = _plan_of(wildcards)
    split = dag.pack_split(plan, wildcards.pack)
    return [f"{DATA}/{split}{SPLIT}", f"{DATA}/val{SPLIT}", f"{DATA}/prep.json",
            *dag.pack_weights(plan, wildcards.pack)]


rule train_pack:
    input:
        data=_pack_data,
    output:
        f"{RESULTS}/{{stage}}/round{{round}}/packs/{{pack}}.json",
    params:
        code=dag.command_digest("train"),
        trials_ids=lambda wc: dag.pack_trials(_plan_of(wc), wc.pack),
        plan=_plan_of,
        trials=f"{RESULTS}/{{stage}}/trials",
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/train/{{stage}}/round{{round}}_{{pack}}.log",
    conda:
        ENV
    threads: dag.threads(config, "train")
    resources:
        **dag.resources(config, "train"),
    shell:
        "{ALCHEMIST} train --plan {params.plan} --pack {wildcards.pack} --data-dir {DATA} "
        "--out-dir {params.trials} --done {output} --threads {threads} > {log} 2>&1"
