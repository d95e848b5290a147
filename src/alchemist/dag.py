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
