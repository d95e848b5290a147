"""What code a job runs, and its version: the import closure of each `alchemist <command>`.

A rule's rerun trigger is a digest of the files its command executes: `python -m alchemist
<command>` runs `alchemist/__main__.py`, the CLI and the command's module, plus every module of the
package they import, at module level or lazily inside a function (read from the source's import
statements with `ast`, never by importing). Editing a module's code reruns exactly the jobs whose
command imports it; editing one that none imports reruns nothing. A digest hashes what the files
run — their syntax trees without docstrings — so touching a file, or editing its comments,
layout or docstrings, reruns nothing either (no trial retrains for a comment). What a parse
finds is cached by (mtime, size) in the process and in `__pycache__/alchemist-provenance.json`
beside the package (as Python caches bytecode): the Snakefile asks for a dozen closures at every
parse — every run, every cluster job — and a source file is parsed again only when it changes.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import alchemist

PACKAGE = "alchemist"
PACKAGE_DIR = Path(alchemist.__file__).resolve().parent
_PARSED: dict[Path, tuple[tuple[int, int], tuple[frozenset[str], bytes]]] = {}
_DISK: dict[str, list] = {}         # the on-disk cache, read once: path -> [mtime_ns, size, imports, code]
_DISK_STATE = {"read": False, "dirty": False}
_FOUND: dict[tuple[Path, str], Path | None] = {}


def module_file(name: str) -> Path | None:
    """The source file of a module of this package (`alchemist.train.engine`), or None."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    key = (PACKAGE_DIR, name)
    if key not in _FOUND:                  # a dozen closures ask for the same names: one stat each
        base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
        _FOUND[key] = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    return _FOUND[key]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> frozenset[str]:
    """Names of every module `path` imports (absolute names, anywhere in the file)."""
    return _parsed(path)[0]


def code_of(path: Path) -> bytes:
    """What a source file runs: the sha256 of its syntax tree (ast.dump) with every docstring
    left out, so comments, layout and docstrings do not count."""
    return _parsed(path)[1]


def _parsed(path: Path) -> tuple[frozenset[str], bytes]:
    """(imports_of, code_of) of a file from one parse, cached by (mtime, size)."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _PARSED.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    stored = _disk().get(str(path))
    if stored and tuple(stored[:2]) == stamp:
        found = (frozenset(stored[2]), bytes.fromhex(stored[3]))
        _PARSED[path] = (stamp, found)
        return found
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    tree = ast.parse(path.read_bytes(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                               # relative: from the file's package
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)   # `from pkg import mod`
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]       # the docstring: not code
    found = (frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")),
             hashlib.sha256(ast.dump(tree).encode()).digest())
    _PARSED[path] = (stamp, found)
    _DISK[str(path)] = [*stamp, sorted(found[0]), found[1].hex()]
    _DISK_STATE["dirty"] = True
    return found


def _disk() -> dict[str, list]:
    """The on-disk cache (read once per process; empty when absent or unreadable)."""
    if not _DISK_STATE["read"]:
        _DISK_STATE["read"] = True
        try:
            _DISK.update(json.loads((PACKAGE_DIR / "__pycache__" / "alchemist-provenance.json").read_text()))
        except (OSError, ValueError):
            pass
    return _DISK


def _save() -> None:
    """Write the on-disk cache if a parse added to it; a read-only install just parses again."""
    if not _DISK_STATE["dirty"]:
        return
    _DISK_STATE["dirty"] = False
    from alchemist.atomic import write_text

    try:
        write_text(PACKAGE_DIR / "__pycache__" / "alchemist-provenance.json", json.dumps(_DISK))
    except OSError:
        pass


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
    """A 16-hex fingerprint of `files`: their package-relative paths and code (code_of), in the
    given order."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + code_of(path))
    _save()
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
