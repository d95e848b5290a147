# Tables per round and per stage (trials, seed averages, leaderboard); the selection: select.smk.


rule aggregate_round:
    input:
        packs=lambda wc: round_packs(wc.stage, int(wc.round)),
    output:
        f"{RESULTS}/{{stage}}/round{{round}}/trials.parquet",
    params:
        code=dag.command_digest("aggregate"),
        trials=f"{RESULTS}/{{stage}}/trials",
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/aggregate/{{stage}}_round{{round}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} aggregate --packs {input.packs} --trials-dir {params.trials} "
        "--out {output} > {log} 2>&1"


rule aggregate_stage:
    input:
        packs=lambda wc: stage_packs(wc.stage),
    output:
        trials=f"{RESULTS}/{{stage}}/trials.parquet",
        seeds=f"{RESULTS}/{{stage}}/seeds.parquet",
        leaderboard=f"{RESULTS}/{{stage}}/leaderboard.csv",
        leaderboard_html=report(f"{RESULTS}/{{stage}}/leaderboard.html", **report_contents.entry("leaderboard")),
    params:
        code=dag.command_digest("aggregate"),
        trials=f"{RESULTS}/{{stage}}/trials",
    priority: CRITICAL
    log:
        f"{RESULTS}/logs/aggregate/{{stage}}.log",
    conda:
        ENV
    shell:
        "{ALCHEMIST} aggregate --summary --packs {input.packs} --trials-dir {params.trials} "
        "--out {output.trials} > {log} 2>&1"
