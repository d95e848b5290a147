# Diagnostics before the search, on the `train:` defaults (full train split), in one job:
# - LR range test (PB-13): loss vs an exponentially growing LR, suggested LR, plot;
# - sanity checks (PB-24): the initial loss ≈ ln C and a tiny batch can be overfit — if not,
#   suspect the data or the model code, not the hyperparameters.
# Each stage's publish job syncs this folder to MLflow too (a no-op once it is).
# Bookkeeping priority: it fills a core the search leaves idle, never delays a training job.


rule diagnostics:
    input:
        data=[f"{DATA}/train{SPLIT}", f"{DATA}/val{SPLIT}", f"{DATA}/prep.json"],
    output:
        table=f"{RESULTS}/diagnostics/lr_find.parquet",
        plot=report(f"{RESULTS}/diagnostics/lr_find.png", **report_contents.entry("lr_find")),
        summary=f"{RESULTS}/diagnostics/lr_find.json",
        sanity=f"{RESULTS}/diagnostics/sanity.json",
    params:
        code=dag.command_digest("diagnostics"),
        trial=dag.params_file({**config["train"], "data": "train"}),
    log:
        f"{RESULTS}/logs/diagnostics.log",
    conda:
        ENV
    threads: job_resources.threads(config, "default")
    resources:
        **job_resources.resources(config, "default"),
    shell:
        "{ALCHEMIST} diagnostics --data-dir {DATA} --out-dir {RESULTS}/diagnostics "
        "--out {output.sanity} --trial {params.trial} --threads {threads} > {log} 2>&1"
