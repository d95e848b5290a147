"""Shared fixtures: a private copy of the workflow per test, and a real `snakemake` runner."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers importable

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# the lockbox's per-user registry: never the real ~/.local/state (Workflow and the autouse
# fixture below give each workflow and test its own)
os.environ.setdefault("ALCHEMIST_LOCKBOX_DIR", tempfile.mkdtemp(prefix="alchemist-lockbox-"))
# decoded image folders (alchemist.data.image_folder.cache_dir): never the real ~/.cache
os.environ.setdefault("ALCHEMIST_CACHE_DIR", tempfile.mkdtemp(prefix="alchemist-cache-"))


class Workflow:
    """A copy of Snakefile + workflow/ + config/ + src/alchemist in a temp dir, driven by the real
    snakemake."""

    def __init__(self, root: Path, registry: Path | None = None):
        self.root = root
        # the lockbox's per-user registry (outside results/): one per workflow unless shared,
        # as two clones on one machine share it
        self.registry = registry or root / ".lockbox-registry"
        root.mkdir(parents=True, exist_ok=True)
        for name in ("Snakefile", "workflow", "config", "envs"):
            src = REPO / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
        # the package beside the Snakefile (its jobs import it from there): a snapshot per test
        shutil.copytree(REPO / "src" / "alchemist", root / "src" / "alchemist",
                        ignore=shutil.ignore_patterns("__pycache__"))

    @property
    def config(self) -> dict:
        return yaml.safe_load((self.root / "config" / "config.yaml").read_text())

    def write_config(self, config: dict) -> None:
        (self.root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def update(self, **sections) -> dict:
        config = self.config
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        self.write_config(config)
        return config

    def run(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        cmd = ["snakemake", "--cores", "2", *args]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                              env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "ALCHEMIST_LOCKBOX_DIR": str(self.registry)}

    def snapshot(self, folder: str = "results") -> dict[str, str]:
        """sha256 + mtime of every file under `folder` (to prove nothing changed)."""
        out = {}
        for path in sorted((self.root / folder).rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(self.root))] = f"{digest}:{path.stat().st_mtime_ns}"
        return out


def nothing_to_do(proc: subprocess.CompletedProcess) -> bool:
    return "Nothing to be done" in proc.stdout + proc.stderr


@pytest.fixture(autouse=True)
def lockbox_registry(tmp_path, monkeypatch):
    """Every test its own per-user lockbox registry (never the real ~/.local/state)."""
    monkeypatch.setenv("ALCHEMIST_LOCKBOX_DIR", str(tmp_path / "lockbox-registry"))


@pytest.fixture
def workflow(tmp_path) -> Workflow:
    return Workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory) -> Workflow:
    """The default `snakemake --cores 2` on digits, run once per test session (≈ 2-3 min)."""
    wf = Workflow(tmp_path_factory.mktemp("default") / "wf")
    wf.proc = wf.run(timeout=1200)
    return wf
