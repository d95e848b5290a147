# One job per pack: K trials trained together as one vectorised model (PB-26). The pack's trial
# configs are the rerun trigger (params), the data splits and the engine's code are inputs.


def _plan_of(wildcards):
    return checkpoints.plan_round.get(stage=wildcards.stage, round=wildcards.round).output[0]


def _pack_data(wildcards):
    split = dag.pack_split(_plan_of(wildcards), wildcards.pack)
    return [f"{DATA}/{split}.parquet", f"{DATA}/val.parquet", f"{DATA}/prep.json"]


rule train_pack:
    input:
        code=dag.code("train", "trial.py"),
        data=_pack_data,
    output:
        f"{RESULTS}/{{stage}}/round{{round}}/packs/{{pack}}.json",
    params:
        trials_ids=lambda wc: dag.pack_trials(_plan_of(wc), wc.pack),
        plan=_plan_of,
        trials=f"{RESULTS}/{{stage}}/trials",
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
