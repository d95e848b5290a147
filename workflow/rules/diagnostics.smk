# Diagnostics before the search, on the `train:` defaults (full train split):
# - LR range test (PB-13): loss vs an exponentially growing LR, suggested LR, plot;
# - sanity checks (PB-24): the initial loss ≈ ln C and a tiny batch can be overfit — if not,
#   suspect the data or the model code, not the hyperparameters.

BASE_TRIAL = dag.params_json({**config["train"], "data": "train"})


rule lr_find:
    input:
        data=[f"{DATA}/train.parquet", f"{DATA}/val.parquet", f"{DATA}/prep.json"],
    output:
        table=f"{RESULTS}/diagnostics/lr_find.parquet",
        plot=report(f"{RESULTS}/diagnostics/lr_find.png", category="Diagnostics",
                    caption="../report/lr_find.rst"),
        summary=f"{RESULTS}/diagnostics/lr_find.json",
    params:
        code=dag.command_digest("lr-find"),
        trial=BASE_TRIAL,
    log:
        f"{RESULTS}/logs/lr_find.log",
    conda:
        ENV
    threads: dag.threads(config, "default")
    resources:
        **dag.resources(config, "default"),
    shell:
        "{ALCHEMIST} lr-find --data-dir {DATA} --out-dir {RESULTS}/diagnostics "
        "--trial {params.trial:q} --threads {threads} > {log} 2>&1"


rule sanity_check:
    input:
        data=[f"{DATA}/train.parquet", f"{DATA}/val.parquet", f"{DATA}/prep.json"],
    output:
        f"{RESULTS}/diagnostics/sanity.json",
    params:
        code=dag.command_digest("sanity"),
        trial=BASE_TRIAL,
    log:
        f"{RESULTS}/logs/sanity_check.log",
    conda:
        ENV
    threads: dag.threads(config, "default")
    resources:
        **dag.resources(config, "default"),
    shell:
        "{ALCHEMIST} sanity --data-dir {DATA} --out {output} --trial {params.trial:q} "
        "--threads {threads} > {log} 2>&1"
