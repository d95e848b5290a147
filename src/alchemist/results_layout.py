"""THE layout of a results folder: where every file the pipeline writes lives, from one root.

Commands take `--results` (default `results`, the Snakefile's RESULTS, relative to where they are
started) and resolve every other default path from it, so `alchemist lockbox --results other/`
or a command started in another folder reads the same files the pipeline wrote there. The
Snakefile's rules name these paths explicitly (docs/architecture.md lists them); this module is
what the commands and the libraries use when nobody names them. Standard library only: the
end-of-run summary reads it inside Snakemake's own process."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("results")


@dataclass(frozen=True)
class ResultsLayout:
    """Paths under one results root (absolute or relative to the working directory)."""
    root: Path = DEFAULT_ROOT

    @property
    def data(self) -> Path:
        """The prepared data: splits, prep.json, the lockbox seal (results/data)."""
        return self.root / "data"

    @property
    def ledger(self) -> Path:
        """The lockbox ledger, every test-set opening and unseal (results/lockbox/ledger.jsonl)."""
        return self.root / "lockbox" / "ledger.jsonl"

    @property
    def lockbox_status(self) -> Path:
        """The lockbox page the report shows (results/lockbox/status.txt)."""
        return self.root / "lockbox" / "status.txt"

    @property
    def test(self) -> Path:
        """Where the final test writes its evaluation files (results/test)."""
        return self.root / "test"

    @property
    def probe(self) -> Path:
        """The cache of the pack-size probe's figures (results/probe)."""
        return self.root / "probe"

    @property
    def store(self) -> Path:
        """The default MLflow store, a SQLite file (results/mlflow.db)."""
        return self.root / "mlflow.db"

    def stage(self, name: str) -> Path:
        """A stage's folder (its trials, tables, winner.json for a select stage)."""
        return self.root / name

    def winners(self) -> list[Path]:
        """Every select stage's winner.json, sorted by path."""
        return sorted(self.root.glob("*/winner.json"))

    def winner(self) -> Path:
        """The one select stage's winner.json, whatever the stage is called; a UserError when
        there is none or more than one."""
        from alchemist.errors import UserError

        found = self.winners()
        if len(found) != 1:
            what = "no" if not found else f"{len(found)} ({', '.join(map(str, found))})"
            raise UserError(f"found {what} winner.json under {self.root}/; give --winner")
        return found[0]


def add_results_argument(p: argparse.ArgumentParser) -> None:
    """`--results`: the root every other default path of the command is resolved from."""
    p.add_argument("--results", type=Path, default=DEFAULT_ROOT,
                   help="the results folder; other default paths are resolved under it (default: results)")


def add_winner_arguments(p: argparse.ArgumentParser) -> None:
    """`--results` and what a command using the selected winner reads under it (`final-test`,
    `predict`): the prepared data, winner.json and the winner's trial folders."""
    add_results_argument(p)
    p.add_argument("--data-dir", type=Path, default=None, help="prepared data, prep.json (default: <results>/data)")
    p.add_argument("--winner", type=Path, default=None,
                   help="the select stage's winner.json (default: the one under <results>)")
    p.add_argument("--trials-dir", type=Path, default=None,
                   help="the winner's trial folders (default: those of the stage it was selected from)")


def layout(args: argparse.Namespace) -> ResultsLayout:
    """The layout under the command's `--results`."""
    return ResultsLayout(Path(getattr(args, "results", None) or DEFAULT_ROOT))
