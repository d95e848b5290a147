"""Helpers the Snakefile and `workflow/rules/*.smk` call to wire the job graph.

Kept cheap on purpose: every cluster job re-parses the workflow, so nothing here trains, samples
or imports torch/mlflow; plans are read from the JSON files the `plan` rules wrote.
"""
from __future__ import annotations

import json
from pathlib import Path

import alchemist
from alchemist.trial import canonical_json

PACKAGE_DIR = Path(alchemist.__file__).resolve().parent


def code(*relative: str) -> list[str]:
    """Source files a rule depends on, listed as `input:` so a code change reruns it
    (Snakemake does not track programs called from `shell:`; FIELD-NOTES)."""
    files = []
    for rel in relative:
        path = PACKAGE_DIR / rel
        files += sorted(str(p) for p in path.rglob("*.py")) if path.is_dir() else [str(path)]
    return files


def params_json(obj) -> str:
    """Canonical JSON for `params:`: Snakemake compares params by repr(), so key order matters."""
    return canonical_json(obj)


def resources(config: dict, rule: str) -> dict:
    """Resources of a rule from config; runtime and memory scale with the attempt (--retries)."""
    section = config.get("resources", {})
    spec = {**section.get("default", {}), **section.get(rule, {})}
    mem, runtime = int(spec.get("mem_mb", 1000)), int(spec.get("runtime", 15))
    res = {"mem_mb": lambda wc, attempt: mem * attempt,
           "runtime": lambda wc, attempt: runtime * attempt,
           "cpus_per_task": int(spec.get("threads", 1))}
    if spec.get("gpu"):
        res["gpu"] = int(spec["gpu"])
        if spec.get("gpu_model"):
            res["gpu_model"] = spec["gpu_model"]
    return res


def threads(config: dict, rule: str) -> int:
    section = config.get("resources", {})
    return int({**section.get("default", {}), **section.get(rule, {})}.get("threads", 1))


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- search stages and packs
TRAINING_KINDS = ("search", "halving", "repeat")


def stages(config: dict):
    """The parsed `search.stages` (name → Stage), in config order."""
    from alchemist.search.stages import parse_search

    return parse_search(config).stages


def resolved_config(config: dict, folder: Path = Path(".snakemake/alchemist")) -> str:
    """Write the validated config once, content-addressed, for the `plan` jobs to read.
    Not a tracked input: the params below carry what each plan depends on."""
    text = canonical_json(config)
    path = folder / f"config-{__import__('hashlib').sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def plan_params(config: dict, stage: str) -> str:
    """What a stage's plan depends on besides its input tables: never other stages' settings."""
    search = config.get("search", {})
    spec = next(s for s in search.get("stages", []) if s.get("name") == stage)
    return canonical_json({"train": config.get("train", {}), "space": search.get("space"),
                           "pack_size": search.get("pack_size"), "seed": search.get("seed"),
                           "stage": spec})


def plan_packs(plan_file: str) -> dict[str, list[str]]:
    return read_json(plan_file)["packs"]


def pack_spec(plan_file: str, pack: str) -> str:
    """Canonical JSON of the pack's trial configs: the pack job's rerun trigger."""
    plan = read_json(plan_file)
    return canonical_json([plan["trials"][t] for t in plan["packs"][pack]])


def pack_split(plan_file: str, pack: str) -> str:
    plan = read_json(plan_file)
    return plan["trials"][plan["packs"][pack][0]].get("data", "train")
