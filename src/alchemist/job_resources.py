"""What a Snakemake job may use, from the config's `resources:` section: threads, memory and
runtime per rule (scaled by the attempt under --retries), GPUs; and how many training jobs run
at once, which `search.pack_size: auto` sizes packs for (alchemist.packing). Called by the
Snakefile and the rule files at parse time: standard library only.
"""
from __future__ import annotations

import os


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


def _resource_value(workflow, name: str):
    try:
        value = workflow.global_resources.get(name)
    except AttributeError:
        return None
    return getattr(value, "value", value)


def parallel_slots(workflow, config: dict) -> int:
    """Training jobs that can run at once: the cores over a job's threads (and the GPUs given
    with --resources gpu=G over a job's GPUs) on one machine; the --jobs limit on a cluster.
    `pack_size: auto` sizes packs for it (alchemist.packing)."""
    if not getattr(workflow, "local_exec", True):
        return max(1, int(_resource_value(workflow, "_nodes") or 1))
    slots = max(1, int(_resource_value(workflow, "_cores") or 1) // max(1, threads(config, "train")))
    gpu_each = int((config.get("resources", {}).get("train") or {}).get("gpu") or 0)
    gpu_total = _resource_value(workflow, "gpu")
    if gpu_each and gpu_total:
        slots = min(slots, max(1, int(gpu_total) // gpu_each))
    return slots


def export_slots(workflow, config: dict) -> None:
    """$ALCHEMIST_SLOTS for the plan jobs (`alchemist plan --slots`), set by the main Snakemake
    process; jobs started elsewhere (cluster jobs, which re-read the Snakefile) inherit it. An
    environment value, not a param: changing --cores does not re-plan finished stages."""
    if getattr(workflow, "is_main_process", True) or "ALCHEMIST_SLOTS" not in os.environ:
        os.environ["ALCHEMIST_SLOTS"] = str(parallel_slots(workflow, config))


def threads(config: dict, rule: str) -> int:
    """Threads for `rule`: `resources.<rule>.threads`, else `resources.default.threads`, else 1."""
    section = config.get("resources", {})
    return int({**section.get("default", {}), **section.get(rule, {})}.get("threads", 1))
