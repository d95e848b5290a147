# alchemist — the deep-learning hyperparameter pipeline (炼丹 as a reproducible DAG).
# Thin on purpose: configuration, validation, the rule files, and the default target.
# Logic lives in the `alchemist` package (src/alchemist); rules only wire its CLI.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# Import the package from this checkout (also inside `--sdm conda` envs and cluster jobs).
SRC = os.path.join(workflow.basedir, "src")
if os.path.isdir(SRC):
    sys.path.insert(0, SRC)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))

from alchemist import dag, job_resources
from alchemist.report import contents as report_contents, summary as run_summary  # what the report shows

dag.check_config_file("config/config.yaml")  # a YAML mistake: one line naming file and line
configfile: "config/config.yaml"


# Schema validation (fills defaults) and a dry run of the data checks: a user mistake prints one
# line and exits 2 here, before any job runs or any earlier result is touched.
dag.check_or_exit(config, workflow)

RESULTS = "results"
ALCHEMIST = "python -m alchemist"  # the package CLI every rule calls
ENV = "../../envs/alchemist.yaml"  # conda env of every rule (used with --sdm conda)
DATA = f"{RESULTS}/data"
SPLIT = dag.split_suffix(config["data"])  # prepared split files: .parquet (tables) or .npz (arrays)
STAGES = dag.stages(config)  # search.stages, parsed (name → Stage)
TRAINING = [n for n, s in STAGES.items() if s.kind in dag.TRAINING_KINDS]
SELECTS = [n for n, s in STAGES.items() if s.kind == "select"]
TRACKING = bool(config["mlflow"]["enabled"])
MODEL_NAME = config["mlflow"].get("model_name") or f"{config['mlflow']['experiment']}-winner"  # registered winner
MEASURED = dag.measured_packs(config)  # search.pack_size: auto — plans probe the training device
BUDGET = (config.get("search") or {}).get("budget") is not None  # search.budget: stages sized by `alchemist budget`
job_resources.export_slots(workflow, config)  # $ALCHEMIST_SLOTS: training jobs at once (packs are sized for it)
# The search's chain (prep → plan → train → aggregate → plan … → select) goes first whenever a
# core frees up; bookkeeping (diagnostics, figures, MLflow) fills the cores it leaves idle.
CRITICAL = 10


# Cheap bookkeeping runs on the submitting host, not as cluster jobs (each SLURM job costs
# ~6-20 s of overhead); training, prep and diagnostics go to the cluster, and so do the plans when
# they measure the pack size on the training device (plan_round: `localrule: not MEASURED`).
localrules:
    aggregate_round,
    aggregate_stage,
    select_winner,
    publish_stage,
    publish_selection,
    lockbox_status,


wildcard_constraints:
    stage="|".join(TRAINING) or "no-stage",
    select="|".join(SELECTS) or "no-select",
    round=r"\d+",
    pack=r"[0-9a-f]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/prep.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/publish.smk"
include: "workflow/rules/lockbox.smk"


# The report's front page: the end-of-run summary once a run has made one (alchemist.report).
report: report_contents.front_page(RESULTS)


onsuccess:
    run_summary.write(config, RESULTS)   # the run's last lines, results/summary.md and .rst


rule all:
    default_target: True
    input:
        f"{DATA}/prep.json",
        f"{RESULTS}/diagnostics/lr_find.png",
        f"{RESULTS}/diagnostics/sanity.json",
        expand(f"{RESULTS}/{{stage}}/trials.parquet", stage=TRAINING),
        expand(f"{RESULTS}/{{select}}/winner.json", select=SELECTS),
        expand(f"{RESULTS}/plots/{{stage}}", stage=TRAINING),
        f"{RESULTS}/lockbox/status.txt",
        expand(f"{RESULTS}/{{stage}}/mlflow_sync.json", stage=[*TRAINING, *SELECTS] if TRACKING else []),
