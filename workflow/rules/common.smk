# Input functions several rule files share (the Snakemake workflow catalog's common.smk).


def source_dir(stage):
    """The folder of the stage this one reads (`from:`), or None for a first stage."""
    source = STAGES[stage].source
    return f"{RESULTS}/{source}" if source else None


def round_packs(stage, round_):
    """The pack done-files of one round (known once its plan checkpoint has run)."""
    plan = checkpoints.plan_round.get(stage=stage, round=round_).output[0]
    return [f"{RESULTS}/{stage}/round{round_}/packs/{p}.json" for p in dag.plan_packs(plan)]


def stage_packs(stage):
    """Every pack done-file of a stage, all its rounds."""
    return [f for r in range(1, STAGES[stage].n_rounds + 1) for f in round_packs(stage, r)]
