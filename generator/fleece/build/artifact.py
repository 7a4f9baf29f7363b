"""``fleece build``: the deployment zip of a service, or the same files in a folder.

The straight line of a build:

1. settings: flags, else the service's answers (runtime, architecture), else
   the defaults (``src/``, ``src/requirements.txt``, ``dist/``, python3.12, x86_64);
2. the source: the files of ``src/`` (``fleece.build.contents``: excludes,
   build leftovers, symbolic links);
3. dependencies: from the cache when the same requirements were installed for
   the same runtime before, else installed (``fleece.build.wheels`` without
   Docker, ``fleece.build.container`` with it) and stored in the cache
   (``fleece.build.cache``);
4. the check that the zip will hold the module of every handler of
   ``template.yaml`` built from it (``fleece.build.template``);
5. bytecode for the runtime's Python (``fleece.build.bytecode``): the
   dependencies' comes with their cached, compressed layer; the source's is
   compiled (or remembered) at each build;
6. the zip: the dependency layer, then the source and its bytecode,
   reproducible (``fleece.build.ziparchive``), checked against Lambda's size
   limits, then moved into place (an older zip stays if anything fails); with
   ``--output-dir``, its files are put in that folder instead (for ``sam build``).
"""

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleece import __version__
from fleece.build.bytecode import (
    Compiler,
    compile_modules,
    find_interpreter,
    local_compiler,
)
from fleece.build.cache import (
    Dependencies,
    DependencySettings,
    bytecode_memo,
    dependencies,
    dependency_layer,
    interpreter_memo,
)
from fleece.build.contents import collect_files, is_excluded
from fleece.build.requirements import has_requirements, requirement_inputs
from fleece.build.template import Handler, missing_handlers, template_handlers
from fleece.build.wheels import Runtime, installed_pip, parse_runtime
from fleece.build.ziparchive import ZipSummary, extract_zip, write_zip
from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress
from fleece.service.layout import ANSWERS_FILE, load_answers

__all__ = [
    "UNZIPPED_LIMIT",
    "ZIPPED_LIMIT",
    "BuildRequest",
    "BuildResult",
    "build",
    "check_limits",
    "describe",
]

ZIP_NAME = "lambda_function.zip"
BUILD_INFO = "build_info.json"
MB = 1024 * 1024
# A zip uploaded directly is at most 50 MB; through S3 (sam deploy uploads the
# template's CodeUri there) only the extracted size is limited.
ZIPPED_LIMIT = 50 * MB
UNZIPPED_LIMIT = 250 * MB  # the function and its layers, extracted
NEAR_LIMIT = 0.8  # warn from this share of a limit on


@dataclass(frozen=True)
class BuildRequest:
    """Every setting of one ``fleece build``; ``None`` means the default."""

    service_dir: Path = Path(".")
    source: Path | None = None
    requirements: Path | None = None
    target: Path | None = None
    output_dir: Path | None = None
    excludes: tuple[str, ...] = ()
    python: str | None = None
    architecture: str | None = None
    docker: bool = False
    dependencies: tuple[str, ...] = ()
    rebuild: bool = False
    inject_build_info: bool = False
    compile: bool = True


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote: the zip, or the folder of its files."""

    path: Path
    runtime: Runtime
    summary: ZipSummary
    dependencies: str  # "none", "cache" or "installed"
    bytecode: str | None  # what compiled the modules; None: no bytecode
    folder: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    source: Path
    requirements: Path | None
    target: Path
    runtime: Runtime
    handlers: tuple[Handler, ...]


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """Build the service's zip (or folder); see the module docstring."""
    progress = progress or Progress.quiet()
    plan = _plan(request)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fleece-build-") as name:
        scratch = Path(name)
        source = collect_files(
            plan.source, request.excludes, leftovers=True, label=str(plan.source)
        )
        warnings += source.warnings
        installed = _dependencies(plan, request, scratch, progress)
        if installed is not None and installed.origin == "installed":
            warnings += installed.warnings
        entries: dict[str, Path | bytes] = dict(source.files)
        if request.inject_build_info:
            entries[BUILD_INFO] = _build_info(request.service_dir)
        # The service's own files win over dependency files of the same name.
        layer_names = [
            n
            for n in (installed.names if installed else ())
            if n not in entries and not is_excluded(n, request.excludes)
        ]
        missing_handlers(plan.handlers, {*layer_names, *entries})
        compiler, note = _compiler(plan.runtime, request, progress)
        warnings += [note] if note else []
        layer = None
        if installed is not None:
            layer = dependency_layer(
                installed, layer_names, compiler, request.excludes, scratch, progress
            )
        if compiler is not None:
            progress.begin("compile")
            modules = {n: p for n, p in source.files.items() if n.endswith(".py")}
            compiled = compile_modules(compiler, modules, scratch, bytecode_memo())
            entries.update(
                (n, b)
                for n, b in compiled.bytecode.items()
                if not is_excluded(n, request.excludes)
            )
            if compiled.failures:
                warnings.append(_not_compiled(compiled.failures, plan.source, compiler))
        progress.begin("zip")
        if request.output_dir is None:
            path = plan.target / ZIP_NAME
            summary, near = _write_zip(plan.target, entries, layer)
        else:
            path = request.output_dir
            summary, near = _write_folder(path, entries, layer, scratch)
        warnings += near
        progress.end()
    return BuildResult(
        path,
        plan.runtime,
        summary,
        installed.origin if installed else "none",
        compiler.name if compiler else None,
        request.output_dir is not None,
        warnings,
    )


# -- settings ----------------------------------------------------------------


def _plan(request: BuildRequest) -> _Plan:
    service = request.service_dir
    if not service.is_dir():
        raise BadInput(f"{service}: no such service folder")
    answers = load_answers(service) if (service / ANSWERS_FILE).is_file() else {}
    python = request.python or str(answers.get("python_runtime", "python3.12"))
    architecture = request.architecture or str(answers.get("architecture", "x86_64"))
    runtime = parse_runtime(python, architecture)
    if request.dependencies and not request.docker:
        raise BadInput(
            "--dependencies installs system packages in the build container: add --docker"
        )
    source = request.source or service / "src"
    if not source.is_dir():
        raise BadInput(f"{source}: no such source folder (set it with --source)")
    requirements = request.requirements
    if requirements is None:
        default = source / "requirements.txt"
        requirements = default if default.is_file() else None
    elif not requirements.is_file():
        raise BadInput(f"{requirements}: no such requirements file")
    if requirements is not None and not has_requirements(requirements):
        requirements = None
    target = request.target or service / "dist"
    if request.output_dir is not None:
        _check_output_dir(request)
    handlers = template_handlers(service, [source, target / ZIP_NAME])
    return _Plan(source, requirements, target, runtime, tuple(handlers))


def _check_output_dir(request: BuildRequest) -> None:
    output = request.output_dir
    assert output is not None
    if request.target is not None:
        raise BadInput("--target is the zip's folder: give --target or --output-dir, not both")
    if output.exists() and not output.is_dir():
        raise BadInput(f"--output-dir {output}: not a folder")
    if output.is_dir() and any(output.iterdir()):
        raise BadInput(
            f"--output-dir {output}: not empty; fleece build fills an empty or new "
            "folder (sam build gives one)"
        )


# -- dependencies and bytecode ------------------------------------------------


def _dependencies(
    plan: _Plan, request: BuildRequest, scratch: Path, progress: Progress
) -> Dependencies | None:
    if plan.requirements is None:
        return None
    settings = DependencySettings(
        plan.runtime,
        docker=request.docker,
        system_packages=request.dependencies,
        pip=None if request.docker else installed_pip(),
        rebuild=request.rebuild,
    )
    inputs = requirement_inputs(plan.requirements)
    return dependencies(inputs, settings, scratch, progress)


def _compiler(
    runtime: Runtime, request: BuildRequest, progress: Progress
) -> tuple[Compiler | None, str | None]:
    """What compiles the zip's modules, or the note saying why nothing does."""
    if not request.compile:
        return None, None
    interpreter = find_interpreter(runtime.python, interpreter_memo())
    if interpreter is not None:
        return local_compiler(interpreter), None
    if request.docker:
        from fleece.build.container import container_compiler

        return container_compiler(runtime, progress), None
    return None, (
        f"no Python {runtime.python} found (on PATH, in pyenv's or uv's Pythons): "
        "the zip ships without bytecode, so Lambda compiles its modules at every "
        f"cold start; install Python {runtime.python} (uv python install "
        f"{runtime.python}), build with --docker, or pass --no-compile"
    )


def _not_compiled(failures: dict[str, str], source: Path, compiler: Compiler) -> str:
    shown = [f"{source}/{name} ({message})" for name, message in sorted(failures.items())]
    return (
        f"{len(shown)} module{'s' if len(shown) > 1 else ''} of the source "
        f"{'do' if len(shown) > 1 else 'does'} not compile for Python "
        f"{compiler.python} and ship{'' if len(shown) > 1 else 's'} without "
        f"bytecode: {'; '.join(shown)}"
    )


# -- the zip or the folder -----------------------------------------------------


def _write_zip(
    target: Path, entries: dict[str, Path | bytes], layer: Path | None
) -> tuple[ZipSummary, list[str]]:
    """The zip in ``target``, whole or not at all: an older one stays on failure.

    Also the warnings of ``check_limits``, which stops a zip past the hard limit.
    """
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f".{ZIP_NAME}.{os.getpid()}.tmp"
    try:
        summary = write_zip(partial, entries, base=layer)
        warnings = check_limits(summary)
        os.chmod(partial, 0o644)
        os.replace(partial, target / ZIP_NAME)
    finally:
        partial.unlink(missing_ok=True)
    return summary, warnings


def _write_folder(
    output: Path, entries: dict[str, Path | bytes], layer: Path | None, scratch: Path
) -> tuple[ZipSummary, list[str]]:
    """The zip's files in the empty or new folder ``output``, all or none; and
    the warnings of ``check_limits``."""
    archive = scratch / ZIP_NAME
    summary = write_zip(archive, entries, base=layer)
    warnings = check_limits(summary)
    output.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        extract_zip(archive, fresh)
        os.chmod(fresh, 0o755)
        if output.is_dir():
            output.rmdir()  # empty, as _plan checked
        os.replace(fresh, output)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return summary, warnings


def check_limits(summary: ZipSummary) -> list[str]:
    """Warnings about Lambda's size limits; a ``FleeceError`` past the hard one.

    Only the unzipped size is a hard limit: the zipped one applies to a direct
    upload, while ``sam deploy`` uploads the template's ``CodeUri`` to S3.
    """
    if summary.unzipped > UNZIPPED_LIMIT:
        raise FleeceError(
            f"the zip is {_mb(summary.unzipped)} unzipped, past Lambda's "
            f"{_mb(UNZIPPED_LIMIT)} limit: leave files out with --exclude "
            "(the limit counts the function's layers too)"
        )
    warnings = []
    if summary.unzipped >= NEAR_LIMIT * UNZIPPED_LIMIT:
        warnings.append(
            f"the zip is {_mb(summary.unzipped)} unzipped, near Lambda's "
            f"{_mb(UNZIPPED_LIMIT)} limit"
        )
    if summary.size > ZIPPED_LIMIT:
        warnings.append(
            f"the zip is {_mb(summary.size)} zipped, past Lambda's "
            f"{_mb(ZIPPED_LIMIT)} limit of a direct upload: deploy it through S3 "
            "(sam deploy does), not by uploading the zip to the function"
        )
    elif summary.size >= NEAR_LIMIT * ZIPPED_LIMIT:
        warnings.append(
            f"the zip is {_mb(summary.size)} zipped, near Lambda's "
            f"{_mb(ZIPPED_LIMIT)} limit of a direct upload (deploys through S3, "
            "as sam deploy does, are not bound by it)"
        )
    return warnings


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _build_info(service: Path) -> bytes:
    """The commit the zip was built from, and when; only with --inject-build-info."""
    try:
        commit: str | None = subprocess.run(
            ["git", "-C", str(service), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch and not epoch.isdigit():
        raise BadInput(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    info = {
        "commit": commit,
        "built_at": moment.isoformat(timespec="seconds"),
        "fleece_version": __version__,
    }
    return (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8")


def describe(result: BuildResult) -> str:
    """The summary line of a build."""
    summary = result.summary
    origin = {
        "none": "no dependencies",
        "cache": "dependencies from cache",
        "installed": "dependencies installed",
    }[result.dependencies]
    bytecode = f"bytecode by {result.bytecode}" if result.bytecode else "no bytecode"
    settings = f"{result.runtime.name}, {result.runtime.architecture}, {origin}, {bytecode}"
    if result.folder:
        return (
            f"Built {result.path}/ ({settings}): {summary.files} files, "
            f"{_mb(summary.unzipped)}"
        )
    return (
        f"Built {result.path} ({settings}): {summary.files} files, "
        f"{_mb(summary.size)} zipped, {_mb(summary.unzipped)} unzipped, "
        f"sha256 {summary.sha256}"
    )
