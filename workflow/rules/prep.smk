# Prep stage (PB-1..PB-4): test hold-out, 8:2 train/val, train-only normalisation, coarse subsample.
# The data config travels as canonical JSON in params, so only a real change reruns it; the
# code it runs is hashed into params too (dag.command_digest), so a code edit reruns it; a user's
# data file (source, test_file) is an input, so editing it reruns prep and everything after.


rule prepare_data:
    input:
        dag.data_files(config["data"]),
    output:
        train=f"{DATA}/train{SPLIT}",
        val=f"{DATA}/val{SPLIT}",
        test=f"{DATA}/test{SPLIT}",
        train_coarse=f"{DATA}/train_coarse{SPLIT}",
        manifest=f"{DATA}/prep.json",
    params:
        code=dag.command_digest("prep"),
        data=dag.params_file({"data": config["data"]}),
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/prepare_data.log",
    conda:
        ENV
    threads: job_resources.threads(config, "prep")
    resources:
        **job_resources.resources(config, "prep"),
    shell:
        "{ALCHEMIST} prep --config {params.data} --out {DATA} > {log} 2>&1"
