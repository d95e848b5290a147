"""Commands work as printed (issue 23, point 1): every `snakemake` line of the README's shell
blocks and every command the pipeline prints (the summary's and the final-test help's) is valid
as written in a copy of the repository with its workflow profile (profiles/default: cores), and
one of them — without --cores — really runs."""
from __future__ import annotations

import re
import shlex
import shutil

import pytest
import yaml

from alchemist.report import summary
from conftest import REPO, Workflow

#: lines that need what a copy does not have (a cluster, a user's file, results to report on)
NEEDS_MORE = ("--profile slurm", "--configfile", "--report", "--unlock", "--forcerun")


def readme_commands() -> list[str]:
    """The `snakemake …` commands of the README's ```bash blocks (after `&&`, comments dropped)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = line.split(" #")[0].split("&&")[-1].strip()
            if command.startswith("snakemake") and not any(n in command for n in NEEDS_MORE):
                commands.append(command)
    return commands


def printed_commands() -> list[str]:
    """What the pipeline tells a user to run: the summary's lockbox line and the final-test help."""
    sealed = summary._lockbox(REPO / "no-such-status.txt")
    helper = (REPO / "workflow/rules/lockbox.smk").read_text()
    return [*re.findall(r"`(snakemake [^`]+)`", sealed), *re.findall(r"To proceed:\s+(snakemake [^\n\"]+)", helper)]


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    wf = Workflow(tmp_path_factory.mktemp("printed") / "wf")
    shutil.copytree(REPO / "profiles", wf.root / "profiles")
    experiment = wf.root / "experiments/iris/config"           # the README's second experiment
    experiment.mkdir(parents=True)
    config = wf.config
    config["data"]["source"], config["mlflow"]["experiment"] = "sklearn:iris", "iris"
    (experiment / "config.yaml").write_text(yaml.safe_dump(config))
    return wf


def test_the_lists_are_not_empty():
    assert len(readme_commands()) >= 4 and "snakemake --cores 2" in readme_commands()
    assert printed_commands() == ["snakemake final_test --config final_test=confirm"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("command", list(dict.fromkeys(readme_commands() + printed_commands())))
def test_each_command_is_valid_as_written(copy, command):
    argv = shlex.split(command)
    import subprocess

    proc = subprocess.run([*argv, "-n"], cwd=copy.root, capture_output=True, text=True, env=copy.env,
                          timeout=300)
    assert proc.returncode == 0, (command, proc.stderr[-2000:])
    assert "This was a dry-run" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_bare_command_runs_without_cores(copy):
    """Without the profile Snakemake 9 refuses: 'cores have to be specified'."""
    import subprocess

    proc = subprocess.run(["snakemake", "results/data/prep.json"], cwd=copy.root, capture_output=True,
                          text=True, env=copy.env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (copy.root / "results/data/prep.json").exists()
