"""What the Snakefile checks on its way in, besides the config's values (alchemist.config):

* `config/config.yaml` parses — a YAML mistake names the file and line (Snakemake's own message
  names neither). `--configfile` files are read by Snakemake before the Snakefile runs, so their
  syntax errors stay Snakemake's.
* an override that cannot do what it says: `search: {space: {}}` in a `--configfile` or
  `--config` is merged away key by key (Snakemake's update_config), leaving the default space —
  refused with the way to say it.
* a run that was killed: its lock (`.snakemake/locks/`) and unfinished outputs
  (`.snakemake/incomplete/`) make the next run fail with advice spread over two errors; when no
  live Snakemake process works in this directory, one line gives the exact command to continue.
"""
from __future__ import annotations

import copy
import os
import shlex
import sys
from pathlib import Path

import yaml

from alchemist.errors import UserError


def check_yaml(path: str | Path) -> None:
    """UserError `<file> line <n>: <problem>` when the YAML file does not parse."""
    try:
        yaml.safe_load(Path(path).read_text())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}{line}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from None


def check_overrides(configfiles: list, overwrite: dict | None, config: dict | None = None) -> None:
    """UserError when an override empties `search.space` (it would be merged away). A space
    entry an override gives replaces the earlier one whole in `config` (Snakemake merges it key
    by key: `lr: {uniform: …}` over `lr: {log_uniform: …}` would hold both kinds)."""
    sources = [(str(f), _read(f)) for f in configfiles] + [("--config", overwrite or {})]
    for where, data in sources:
        search = data.get("search") if isinstance(data, dict) else None
        if isinstance(search, dict) and search.get("space") == {}:
            raise UserError(f"{where}: search.space: {{}} does not remove the default space — "
                            "Snakemake merges config files key by key. List the settings to search, "
                            "or fix a setting in train: (a stage's `set:` fixes it for one stage)")
        space = search.get("space") if isinstance(search, dict) else None
        if config is not None and isinstance(space, dict) and isinstance(config.get("search"), dict):
            merged = config["search"].setdefault("space", {})
            merged.update({k: copy.deepcopy(v) for k, v in space.items() if isinstance(v, dict)})


def _read(path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def killed_run_hint(argv: list[str], workdir: Path = Path(".")) -> str | None:
    """The exact command to continue after a killed run, or None (no stale lock, or another
    Snakemake process is working here)."""
    locks = list((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks or _other_snakemake_here(workdir.resolve()):
        return None
    incomplete = any((workdir / ".snakemake" / "incomplete").glob("*"))
    again = [a for a in argv if a not in ("--unlock", "--rerun-incomplete", "--ri")]
    command = shlex.join(["snakemake", *again[1:]] + (["--rerun-incomplete"] if incomplete else []))
    return (f"alchemist: the last run here was killed and left its lock in .snakemake/locks "
            f"(no Snakemake process works here now); to continue: snakemake --unlock && {command}")


def _other_snakemake_here(workdir: Path) -> bool:
    mine = {os.getpid(), os.getppid()}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) in mine or Path(os.readlink(proc / "cwd")).resolve() != workdir:
                continue
            if b"snakemake" in (proc / "cmdline").read_bytes():
                return True
        except (OSError, ValueError):
            continue
    return False


def print_hints(argv: list[str] | None = None) -> None:
    """Print to stderr how to continue after a killed run (`killed_run_hint`), when there is such a run."""
    hint = killed_run_hint(list(argv if argv is not None else sys.argv))
    if hint:
        print(hint, file=sys.stderr)
