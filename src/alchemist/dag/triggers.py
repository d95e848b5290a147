"""What reruns a job: the values rules give Snakemake as `params:` and inputs — a command's code
digest, the user's data files, content-addressed settings files, the config's hash, the lockbox
ledger's digest. Snakemake compares them; a change reruns exactly the jobs that depend on it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from alchemist.trial import canonical_json, short_hash


def command_digest(command: str) -> str:
    """A rule's code trigger, for `params:`: the digest of every package file `alchemist
    <command>` executes (alchemist.provenance). Snakemake does not track programs called from
    `shell:`; params it compares, so an edit reruns exactly the jobs that run the edited code."""
    from alchemist.provenance import command_digest as digest

    return digest(command)


def data_files(data: dict) -> list[str]:
    """The user's data files (source, test_file; a .npy source's labels file; an image folder's
    images) as prep inputs: editing one reruns prep."""
    source = str(data.get("source") or "")
    if source and Path(source).is_dir():
        from alchemist.data.image_folder import image_files
        from alchemist.errors import UserError

        try:
            return [str(f) for f, _ in image_files(source)]
        except UserError:
            return []                   # prep's parse-time check names the problem
    labels = data.get("target") if source.lower().endswith(".npy") else None
    files = [str(v) for v in (data.get("source"), data.get("test_file"), labels)
             if v and not str(v).startswith(("sklearn:", "synthetic:"))]
    return [(callable_file(f) if is_callable(f) else f) for f in files
            if not is_callable(f) or callable_file(f)]     # a callable source: its module file


def is_callable(source: str) -> bool:
    """Whether a data source is a `module:callable` (not a file of that name)."""
    from alchemist.data.callable_source import is_callable_source

    return is_callable_source(source) and not Path(source).exists()


def callable_file(source: str) -> str | None:
    """The file of a callable source's module (its edits rerun prep), or None."""
    from alchemist.data.callable_source import module_file

    return module_file(source)


PARAMS_DIR = Path(".snakemake/alchemist/params")


def params_file(obj) -> str:
    """A settings object as a content-addressed JSON file (.snakemake/alchemist/params/<sha>.json)
    whose path is the rule's `params:` value and the job's input: Snakemake compares params by
    repr(), so the same content is the same path (no rerun), a change a new one — and a rerun's
    reason is one line naming two short paths, not kilobytes of JSON."""
    text = canonical_json(obj)
    path = PARAMS_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    if not path.exists():
        from alchemist.atomic import write_text

        write_text(path, text + "\n")
    return str(path)


def budget_config(config: dict) -> str:
    """What the budget plan depends on (train + search settings), as a params_file."""
    search = config.get("search", {})
    return params_file({"train": config.get("train", {}),
                        "search": {**search, "space": _canonical_space(search.get("space"))}})


def _canonical_space(space: dict | None) -> dict | None:
    """The space with choice/grid lists in canonical order (their YAML order must not matter)."""
    from alchemist.search.space import LIST_KINDS, value_order

    if not isinstance(space, dict):
        return space
    out = {}
    for key, spec in space.items():
        if isinstance(spec, dict):
            spec = {k: sorted(v, key=value_order) if k in LIST_KINDS and isinstance(v, list) else v
                    for k, v in spec.items()}
        out[key] = spec
    return out


def plan_config(config: dict, stage: str) -> str:
    """Everything a stage's plan depends on besides its input tables, as a params_file: it is
    both the plan job's rerun trigger (params) and the config the job reads. Later stages'
    settings are left out, so changing them never reruns this stage."""
    from alchemist.search.stages import stage_specs

    search = config.get("search", {})
    specs = stage_specs(search) or []
    upto = next(i for i, s in enumerate(specs) if s.get("name") == stage)
    stages = [{k: (_canonical_space(v) if k == "space" else v) for k, v in s.items()}
              for s in specs[: upto + 1]]
    return params_file({"train": config.get("train", {}),
                        "search": {"space": _canonical_space(search.get("space")),
                                   "pack_size": search.get("pack_size"),
                                   "seed": search.get("seed"), "stages": stages,
                                   **({"budget": search["budget"]} if search.get("budget") is not None
                                      else {}),
                                   **({"ignore": search["ignore"]} if search.get("ignore") else {})}})


def config_hash(config: dict) -> str:
    """The config's hash without the lockbox's own keys (recorded with each opening)."""
    return short_hash({k: v for k, v in config.items() if k not in ("final_test", "unseal_reason")}, 16)


def ledger_digest(*paths: str) -> str:
    """Hash of the lockbox ledger files (or 'none'): a params value that changes when one grows."""
    h = hashlib.sha256()
    for p in map(Path, paths):
        h.update(p.read_bytes() if p.exists() else b"<none>")
    return h.hexdigest()[:16] if any(Path(p).exists() for p in paths) else "none"


