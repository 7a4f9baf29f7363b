"""Bytecode for the runtime's Python, so Lambda does not compile at cold start.

Lambda unpacks the zip into ``/var/task``, which is read-only: a module
without bytecode there is compiled from source at every cold start, and the
result thrown away. So fleece compiles every module of the zip with an
interpreter of the runtime's exact Python version into
``__pycache__/<module>.cpython-3XY.pyc``, beside its source.

The files are *checked hash-based* ``.pyc`` (PEP 552): they hold a hash of
their source instead of its timestamp, so they stay valid whatever timestamps
the zip gives the files, and Python still compares the hash with the source
before using them: a module edited after the build (in the Lambda console,
say) is compiled from its new source, never shadowed by stale bytecode.

The interpreter is the first of, in order: the Python running fleece, when it
is the runtime's version; ``python3.X`` on ``PATH`` (not a pyenv or asdf
*shim*, which may answer for another version); pyenv's ``versions/3.X.*``;
uv's managed Pythons; with ``--docker`` and none of those, the AWS SAM build
image of the runtime. Each candidate is asked its version and bytecode magic
number once (the answer is remembered in the cache, keyed by the file's path,
size and time), and it compiles in a child process with a fixed hash seed, so
that the same sources give the same bytes.

Compiled sources of the service are remembered in the cache by their content,
so a rebuild compiles only the files that changed.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fleece.errors import FleeceError
from fleece.files import atomic_write

__all__ = [
    "WORKER",
    "Compiled",
    "Compiler",
    "Interpreter",
    "bytecode_name",
    "compile_modules",
    "find_interpreter",
    "interpreter_candidates",
    "local_compiler",
]

# Run by the interpreter that compiles, standard library only: checks that it
# is the Python asked for (exit 3 otherwise), then compiles each job.
# argv: expected "3.12", the jobs file ([[source, name in the zip], ...]),
# the output folder (<index>.pyc). Prints its identity, then one line per
# source that does not compile.
WORKER = """\
import importlib.util, json, py_compile, sys
expected, jobs_file, out = sys.argv[1:4]
identity = {
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "magic": importlib.util.MAGIC_NUMBER.hex(),
    "tag": sys.implementation.cache_tag,
}
print(json.dumps(identity), flush=True)
if identity["implementation"] != "cpython" or "%d.%d" % sys.version_info[:2] != expected:
    sys.exit(3)
with open(jobs_file, encoding="utf-8") as handle:
    jobs = json.load(handle)
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for index, (source, name) in enumerate(jobs):
    try:
        py_compile.compile(
            source, cfile="%s/%d.pyc" % (out, index), dfile=name,
            doraise=True, invalidation_mode=mode,
        )
    except py_compile.PyCompileError as error:
        message = " ".join(str(error.exc_value).split())
        print(json.dumps([index, error.exc_type_name + ": " + message]), flush=True)
"""
_PROBE_TIMEOUT = 30


@dataclass(frozen=True)
class Interpreter:
    """A CPython that can compile for the runtime: where it is and what it makes."""

    path: str
    version: str  # "3.12.1"
    magic: str  # hex of importlib.util.MAGIC_NUMBER
    tag: str  # "cpython-312", the suffix of __pycache__ names

    def identity(self) -> str:
        """What the bytecode depends on, for cache keys."""
        return f"{self.version} {self.magic} {self.tag}"


# Runs the worker: (its arguments, the folder of the job) -> its exit code and
# the lines it printed. The folder holds the jobs file and the output folder;
# the arguments name them relative to it.
Runner = Callable[[Sequence[str], Path], "tuple[int, list[str]]"]


@dataclass(frozen=True)
class Compiler:
    """Compiles modules for one runtime's Python."""

    python: str  # "3.12"
    tag: str  # "cpython-312", the middle of __pycache__ names
    identity: str  # what the bytecode depends on, for cache keys
    name: str  # "Python 3.12.1", or the build image, in the summary line
    where: str  # the interpreter's path, or the build image, in errors
    run: Runner
    sees_host_files: bool = True  # False: sources are copied into the job folder


def local_compiler(interpreter: Interpreter) -> Compiler:
    """A compiler running ``interpreter`` on this machine."""

    def run(arguments: Sequence[str], folder: Path) -> tuple[int, list[str]]:
        command = [interpreter.path, "-S", "-c", WORKER, *arguments]
        done = subprocess.run(
            command,
            cwd=folder,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=_worker_environment(),
        )
        lines = done.stdout.splitlines()
        if done.returncode != 0:
            lines += done.stderr.strip().splitlines()[-1:]  # the error, last
        return done.returncode, lines

    return Compiler(
        python=interpreter.version.rsplit(".", 1)[0],
        tag=interpreter.tag,
        identity=interpreter.identity(),
        name=f"Python {interpreter.version}",
        where=interpreter.path,
        run=run,
    )


def bytecode_name(module: str, tag: str) -> str:
    """The zip path of a module's bytecode: ``a/b.py`` -> ``a/__pycache__/b.<tag>.pyc``."""
    path = PurePosixPath(module)
    return str(path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc")


# -- finding the interpreter ---------------------------------------------------


def interpreter_candidates(
    python: str, environ: Mapping[str, str] = os.environ
) -> Iterator[str]:
    """Paths that may be a CPython ``python`` ("3.12"), best first; see the module docstring."""
    name = f"python{python}"
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        yield sys.executable
    for folder in environ.get("PATH", "").split(os.pathsep):
        # A shim runs whichever version pyenv or asdf selects, or fails.
        if folder and Path(folder).name != "shims":
            candidate = Path(folder) / name
            if os.access(candidate, os.X_OK) and candidate.is_file():
                yield str(candidate)
    pyenv = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for version in _newest_first(pyenv, rf"{re.escape(python)}\.(\d+)"):
        yield str(pyenv / version / "bin" / name)
    uv = _uv_python_folder(environ)
    pattern = rf"cpython-{re.escape(python)}\.(\d+)-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+"
    for version in _newest_first(uv, pattern):
        yield str(uv / version / "bin" / name)


def find_interpreter(
    python: str, memo: Path, environ: Mapping[str, str] = os.environ
) -> Interpreter | None:
    """The first candidate that is CPython ``python``; None when there is none.

    ``memo`` is a JSON file remembering what each candidate answered.
    """
    known = _read_memo(memo)
    changed = False
    found = None
    for candidate in interpreter_candidates(python, environ):
        try:
            stamp = _stamp(candidate)
        except OSError:
            continue
        answer = known.get(candidate)
        if not isinstance(answer, dict) or answer.get("stamp") != stamp:
            answer = {"stamp": stamp, "identity": _probe(candidate)}
            known[candidate] = answer
            changed = True
        identity = answer.get("identity")
        if (
            isinstance(identity, dict)
            and identity.get("implementation") == "cpython"
            and str(identity.get("version")).rsplit(".", 1)[0] == python
        ):
            found = Interpreter(
                candidate,
                str(identity["version"]),
                str(identity["magic"]),
                str(identity["tag"]),
            )
            break
    if changed:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(memo, json.dumps(known, indent=1, sort_keys=True) + "\n")
    return found


def _newest_first(folder: Path, pattern: str) -> list[str]:
    if not folder.is_dir():
        return []
    matches = [(re.fullmatch(pattern, p.name), p.name) for p in folder.iterdir()]
    found = [(int(m.group(1)), name) for m, name in matches if m]
    return [name for _, name in sorted(found, reverse=True)]


def _uv_python_folder(environ: Mapping[str, str]) -> Path:
    if explicit := environ.get("UV_PYTHON_INSTALL_DIR"):
        return Path(explicit)
    data = environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "uv" / "python"


def _stamp(path: str) -> list[int]:
    info = os.stat(path)  # the interpreter itself, through links
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _read_memo(memo: Path) -> dict[str, dict[str, Any]]:
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _probe(candidate: str) -> dict[str, str] | None:
    """What ``candidate`` is, from the worker's first line; None if it does not run.

    Asked for no version at all, the worker says what it is and stops.
    """
    try:
        run = subprocess.run(
            [candidate, "-S", "-c", WORKER, "none", "-", "-"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=_worker_environment(),
            timeout=_PROBE_TIMEOUT,
        )
        identity = json.loads(run.stdout.splitlines()[0])
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return None
    keys = ("version", "implementation", "magic", "tag")
    if not isinstance(identity, dict) or not all(
        isinstance(identity.get(k), str) for k in keys
    ):
        return None
    return {k: identity[k] for k in keys}


def _worker_environment() -> dict[str, str]:
    """Only what the worker needs: a fixed hash seed makes its output stable."""
    environment = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("PATH", "SYSTEMROOT", "LANG", "LC_ALL"):
        if name in os.environ:
            environment[name] = os.environ[name]
    return environment


# -- compiling ---------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    """The bytecode of some modules: zip path -> bytes, and what failed."""

    bytecode: dict[str, bytes]
    failures: dict[str, str]  # module's zip path -> the compiler's message


def compile_modules(
    compiler: Compiler,
    modules: Mapping[str, Path],
    scratch: Path,
    memo: Path | None = None,
) -> Compiled:
    """Compile ``modules`` (zip path of a ``.py`` -> its file) for the runtime.

    ``memo`` is a folder remembering bytecode by the source's content, its
    zip path and the compiler: what it holds is not compiled again.
    """
    bytecode: dict[str, bytes] = {}
    failures: dict[str, str] = {}
    todo: list[tuple[str, Path, Path | None]] = []
    for name, source in sorted(modules.items()):
        kept = None
        if memo is not None:
            kept = memo / f"{_memo_key(compiler, name, source.read_bytes())}.pyc"
            if kept.is_file():
                bytecode[bytecode_name(name, compiler.tag)] = kept.read_bytes()
                continue
        todo.append((name, source, kept))
    if not todo:
        return Compiled(bytecode, failures)
    work = Path(tempfile.mkdtemp(prefix="compile-", dir=scratch))
    try:
        (work / "out").mkdir()
        sources = _sources_for(compiler, [source for _, source, _ in todo], work)
        jobs = [[source, name] for source, (name, _, _) in zip(sources, todo, strict=True)]
        (work / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
        code, lines = compiler.run([compiler.python, "jobs.json", "out"], work)
        if code != 0:
            raise FleeceError(
                f"compiling for Python {compiler.python} with {compiler.where} "
                f"failed (exit {code}): {lines[-1] if lines else 'no output'}"
            )
        for index, message in _failures(lines[1:]):
            failures[todo[index][0]] = message
        for index, (name, _, kept) in enumerate(todo):
            compiled = work / "out" / f"{index}.pyc"
            if not compiled.is_file():
                continue
            data = compiled.read_bytes()
            bytecode[bytecode_name(name, compiler.tag)] = data
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(kept, data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Compiled(bytecode, failures)


def _failures(lines: Sequence[str]) -> Iterator[tuple[int, str]]:
    """The worker's lines about sources that did not compile ([index, message])."""
    for line in lines:
        try:
            index, message = json.loads(line)
        except (ValueError, TypeError):
            continue  # not one of the worker's lines (a warning on stderr, say)
        yield int(index), str(message)


def _memo_key(compiler: Compiler, name: str, source: bytes) -> str:
    digest = hashlib.sha256(f"{compiler.identity}\0{name}\0".encode())
    digest.update(source)
    return digest.hexdigest()


def _sources_for(compiler: Compiler, sources: Sequence[Path], work: Path) -> list[str]:
    """The paths the worker reads: the files themselves, or copies in the job
    folder when the worker sees only that folder (in a container)."""
    if compiler.sees_host_files:
        return [os.path.abspath(source) for source in sources]
    (work / "src").mkdir()
    for index, source in enumerate(sources):
        shutil.copyfile(source, work / "src" / f"{index}.py")
    return [f"src/{index}.py" for index in range(len(sources))]
