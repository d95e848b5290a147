# The select stage: the winner among the configurations of the stage it reads, mean ± CI over
# seeds, ties within noise broken by the smaller interval, then the simpler configuration.


rule select_winner:
    input:
        table=lambda wc: f"{source_dir(wc.select)}/trials.parquet",
    output:
        f"{RESULTS}/{{select}}/winner.json",
    params:
        code=dag.command_digest("select"),
        confidence=lambda wc: STAGES[wc.select].confidence,
        source=lambda wc: STAGES[wc.select].source,
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/{{select}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} select --table {input.table} --source {params.source} --confidence {params.confidence} "
        "--out {output} 2> {log} | tee -a {log}"
