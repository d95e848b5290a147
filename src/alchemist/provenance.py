"""What code a job runs, and its version: the import closure of each `alchemist <command>`.

A rule's rerun trigger is a digest of the files its command executes: `python -m alchemist
<command>` runs `alchemist/__main__.py`, the CLI and the command's module, plus every module of the
package they import, at module level or lazily inside a function (read from the source's import
statements with `ast`, never by importing). Editing a module reruns exactly the jobs whose
command imports it; editing one that none imports reruns nothing. A digest hashes file contents,
so touching a file reruns nothing either. Parsed files are cached by (mtime, size): the Snakefile
asks for a dozen closures at parse time and they share most files.
"""
from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import alchemist

PACKAGE = "alchemist"
PACKAGE_DIR = Path(alchemist.__file__).resolve().parent
_IMPORTS: dict[Path, tuple[tuple[int, int], frozenset[str]]] = {}


def module_file(name: str) -> Path | None:
    """The source file of a module of this package (`alchemist.train.engine`), or None."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> frozenset[str]:
    """Names of every module `path` imports (absolute names, anywhere in the file)."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _IMPORTS.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                               # relative: from the file's package
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)   # `from pkg import mod`
    found = frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))
    _IMPORTS[path] = (stamp, found)
    return found


def closure(*modules: str) -> list[Path]:
    """Source files executed when `modules` are imported: their own, their parent packages'
    `__init__.py`, and those of every package module they import, transitively; sorted."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):          # `import a.b.c` runs a, a.b and a.b.c
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imports_of(path))
    return sorted(seen)


def digest(files: list[Path]) -> str:
    """A 16-hex fingerprint of `files`: their package-relative paths and bytes, in the given order."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def command_files(command: str) -> list[Path]:
    """The files `python -m alchemist <command>` executes."""
    from alchemist.cli import COMMANDS

    return closure(f"{PACKAGE}.__main__", f"{PACKAGE}.commands.{COMMANDS[command]}")


def command_digest(command: str) -> str:
    """The rerun trigger of a rule that runs `alchemist <command>` (for its `params:`)."""
    return digest(command_files(command))


def code_version() -> str:
    """Package version + hash of every source file of the package (works without git)."""
    return f"{alchemist.__version__}+src.{digest(sorted(PACKAGE_DIR.rglob('*.py')))[:12]}"


def source_tags(where: Path) -> dict[str, str]:
    """MLflow's source tags for runs made from a checkout: the git commit (when `where` is in a
    git work tree) and the entry point, so the UI's Source column says what produced a run."""
    import subprocess

    tags = {"mlflow.source.type": "PROJECT", "mlflow.source.name": "alchemist (Snakefile)"}
    try:
        done = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return tags
    if done.returncode == 0 and done.stdout.strip():
        tags["mlflow.source.git.commit"] = done.stdout.strip()
    return tags
