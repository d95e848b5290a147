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
    threads: job_resources.threads(config, "train")
    resources:
        **job_resources.resources(config, "train"),
    shell:
        # --mem-mb caps the process (a pack that does not fit is retried smaller, or fails with one
        # line); exit 137 is a SIGKILL from outside (the kernel's out-of-memory killer): say so.
        # Then one line of the stage's progress on the terminal (alchemist progress).
        "rc=0; {ALCHEMIST} train --plan {params.plan} --pack {wildcards.pack} --data-dir {DATA} "
        "--out-dir {params.trials} --done {output} --threads {threads} --mem-mb {resources.mem_mb} "
        "> {log} 2>&1 || rc=$?; if [ $rc -eq 137 ]; then echo \"alchemist: pack {wildcards.pack} was "
        "killed (SIGKILL: most likely the machine ran out of memory; each training job may use "
        "resources.train.mem_mb = {resources.mem_mb} MB, so give Snakemake --resources mem_mb=<this "
        "machine's MB> or lower search.pack_size)\" | tee -a {log} >&2; fi; "
        "if [ $rc -eq 0 ]; then {ALCHEMIST} progress --results {RESULTS} --stage {wildcards.stage} "
        "--round {wildcards.round} >&2 || true; fi; exit $rc"
