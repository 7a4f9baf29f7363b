"""``fleece build``: the deployment zip of a service.

The straight line of a build:

1. settings: flags, else the service's answers (runtime, architecture), else
   the defaults (``src/``, ``src/requirements.txt``, ``dist/``, python3.12, x86_64);
2. dependencies: from the cache when the same requirements were installed for
   the same runtime before, else installed (``fleece.build.wheels`` without Docker,
   ``fleece.build.container`` with it) and stored in the cache;
3. the zip: dependencies and source at its root, excludes applied to both,
   reproducible (``fleece.build.ziparchive``), checked against Lambda's size limits,
   then moved into place (an older zip stays if anything fails).

The dependency cache lives in ``$FLEECE_CACHE_DIR``, else
``$XDG_CACHE_HOME/fleece``, else ``~/.cache/fleece``. Its key is everything the
installed files depend on: the content of the requirements file, of the files
it includes with ``-r``/``-c`` and of the local packages it names
(``../libs/pkg``, ``-e ../shared``, ``file:`` URLs, ``--find-links`` folders);
the Python version, the architecture, Docker or not, the system packages; the
``PIP_*`` variables; the versions of fleece and pip; and without Docker the
Python and platform pip evaluates environment markers against.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleece import __version__
from fleece.build.wheels import (
    Host,
    Runtime,
    install_requirements,
    marker_gap,
    parse_runtime,
    pip_version,
)
from fleece.build.ziparchive import ZipSummary, collect_files, write_zip
from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress
from fleece.service.layout import ANSWERS_FILE, load_answers

__all__ = [
    "UNZIPPED_LIMIT",
    "ZIPPED_LIMIT",
    "BuildRequest",
    "BuildResult",
    "RequirementInputs",
    "build",
    "cache_dir",
    "check_limits",
    "describe",
    "requirement_inputs",
]

ZIP_NAME = "lambda_function.zip"
BUILD_INFO = "build_info.json"
MB = 1024 * 1024
# A zip uploaded directly is at most 50 MB; through S3 (sam deploy uploads the
# template's CodeUri there) only the extracted size is limited.
ZIPPED_LIMIT = 50 * MB
UNZIPPED_LIMIT = 250 * MB  # the function and its layers, extracted
NEAR_LIMIT = 0.8  # warn from this share of a limit on
_CACHE_FORMAT = 2


@dataclass(frozen=True)
class BuildRequest:
    """Every setting of one ``fleece build``; ``None`` means the default."""

    service_dir: Path = Path(".")
    source: Path | None = None
    requirements: Path | None = None
    target: Path | None = None
    excludes: tuple[str, ...] = ()
    python: str | None = None
    architecture: str | None = None
    docker: bool = False
    dependencies: tuple[str, ...] = ()
    rebuild: bool = False
    inject_build_info: bool = False


@dataclass(frozen=True)
class BuildResult:
    """The zip a build wrote."""

    path: Path
    runtime: Runtime
    summary: ZipSummary
    dependencies: str  # "none", "cache" or "installed"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    source: Path
    requirements: Path | None
    target: Path
    runtime: Runtime


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """Build the service's zip; see the module docstring."""
    progress = progress or Progress.quiet()
    plan = _plan(request)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fleece-build-") as scratch:
        if plan.requirements is None:
            dependencies, origin = None, "none"
        else:
            gap = None if request.docker else marker_gap(plan.runtime, Host.current())
            warnings += [gap] if gap else []
            dependencies, origin = _dependencies(
                plan.requirements, plan.runtime, request, Path(scratch), progress
            )
        progress.begin("zip")
        files = collect_files(dependencies, request.excludes) if dependencies else {}
        # The service's own code wins over a dependency file of the same name.
        files.update(collect_files(plan.source, request.excludes))
        extra = (
            {BUILD_INFO: _build_info(request.service_dir)}
            if (request.inject_build_info)
            else {}
        )
        plan.target.mkdir(parents=True, exist_ok=True)
        destination = plan.target / ZIP_NAME
        partial = plan.target / f".{ZIP_NAME}.{os.getpid()}.tmp"
        try:
            summary = write_zip(files, extra, partial)
            warnings += check_limits(summary)
            os.chmod(partial, 0o644)
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        progress.end()
    return BuildResult(destination, plan.runtime, summary, origin, warnings)


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
    if requirements is not None and not _has_requirements(requirements):
        requirements = None
    target = request.target or service / "dist"
    return _Plan(source, requirements, target, runtime)


def _has_requirements(path: Path) -> bool:
    """False for a file of comments and blank lines only: nothing to install."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return any(line.strip() and not line.strip().startswith("#") for line in lines)


# -- dependencies and their cache ---------------------------------------------


def cache_dir() -> Path:
    """Where fleece keeps installed dependencies between builds."""
    if explicit := os.environ.get("FLEECE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fleece"


def _dependencies(
    requirements: Path,
    runtime: Runtime,
    request: BuildRequest,
    scratch: Path,
    progress: Progress,
) -> tuple[Path, str]:
    pip = None if request.docker else pip_version()
    inputs = requirement_inputs(requirements)
    key = _cache_key(inputs, runtime, request, pip, os.environ)
    store = cache_dir() / "dependencies"
    cached = store / key
    if cached.is_dir() and not request.rebuild:
        return cached, "cache"
    store.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".partial-", dir=store))
    try:
        if request.docker:
            from fleece.build.container import install_requirements_in_docker

            install_requirements_in_docker(
                requirements,
                runtime,
                fresh,
                request.dependencies,
                progress,
                service=request.service_dir,
                inputs=inputs.paths(),
            )
        else:
            install_requirements(
                requirements, runtime, fresh, scratch / "local-wheels", progress
            )
        # Console scripts point at this machine's Python: of no use on Lambda.
        shutil.rmtree(fresh / "bin", ignore_errors=True)
        _store(fresh, cached)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return cached, "installed"


def _store(fresh: Path, cached: Path) -> None:
    """Put a finished install in the cache in one rename, replacing an old one."""
    if cached.exists():
        stale = cached.with_name(f".stale-{cached.name}-{os.getpid()}")
        os.replace(cached, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(fresh, cached)
    except OSError:
        if not cached.is_dir():  # not another build having stored it just now
            raise


def _cache_key(
    inputs: "RequirementInputs",
    runtime: Runtime,
    request: BuildRequest,
    pip: str | None,
    environ: Mapping[str, str],
) -> str:
    # Only the digest is kept: PIP_* values (an index URL with a token) never
    # reach the cache folder's name, a log or the output.
    parts = {
        "format": _CACHE_FORMAT,
        "fleece": __version__,
        "requirements": inputs.digest(),
        "python": runtime.python,
        "architecture": runtime.architecture,
        "docker": request.docker,
        "system": sorted(request.dependencies),
        "pip": pip,  # with Docker, the image's pip
        "markers": None if request.docker else asdict(Host.current()),
        "pip_environment": sorted(
            [name, value] for name, value in environ.items() if name.startswith("PIP_")
        ),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# -- what a requirements file makes pip read ----------------------------------

# Folders never part of a local package: version control, caches, virtual
# environments, and what pip's in-tree build of a setuptools project leaves.
_NOT_PACKAGE = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}
_OPTION = re.compile(
    r"^(--requirement|--constraint|--editable|--find-links|-[rcef])\s*=?\s*(\S+)"
)
_INCLUDES = {"--requirement", "--constraint", "-r", "-c"}
_DIRECT_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*@\s*(\S+)")


@dataclass(frozen=True)
class RequirementInputs:
    """The files a requirements file makes pip read, resolved.

    ``files``: the requirements file and those it includes (``-r``, ``-c``),
    read relative to the including file. ``local``: local packages
    (``../libs/pkg``, ``-e ../shared``, ``file:`` URLs) and ``--find-links``
    folders that exist; pip reads their relative paths from the folder it runs
    in, the requirements file's.
    """

    files: tuple[Path, ...]
    local: tuple[Path, ...]

    def paths(self) -> tuple[Path, ...]:
        return self.files + self.local

    def digest(self) -> str:
        """A digest of the content of every input (local packages: their files)."""
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(b"requirements\0" + path.read_bytes() + b"\0")
        for path in self.local:
            digest.update(b"local\0")
            for name, file in _package_files(path):
                data = file.read_bytes()
                digest.update(f"{name}\0{len(data)}\0".encode() + data)
        return digest.hexdigest()


def requirement_inputs(requirements: Path) -> RequirementInputs:
    """What ``requirements`` makes pip read; see ``RequirementInputs``."""
    folder = requirements.resolve().parent
    files: list[Path] = []
    local: list[Path] = []
    pending = [requirements.resolve()]
    while pending:
        path = pending.pop(0)
        if path in files or not path.is_file():
            continue  # a missing include: pip reports it
        files.append(path)
        for line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
            option = _OPTION.match(line)
            if option and option.group(1) in _INCLUDES:
                pending.append((path.parent / option.group(2)).resolve())
            elif option and option.group(1) in ("--find-links", "-f"):
                # pip tries a --find-links path next to the file first.
                value = option.group(2)
                beside = path.parent / value
                local.append(beside if beside.exists() else folder / value)
            elif option or not line.startswith("-"):
                reference = _local_reference(option.group(2) if option else line)
                if reference is not None:
                    local.append(folder / reference)
    existing = {p.resolve() for p in local if p.exists()}
    return RequirementInputs(tuple(files), tuple(sorted(existing)))


def _logical_lines(text: str) -> Iterator[str]:
    """pip's lines: ``\\`` continues a line, ``#`` after a space starts a comment."""
    for line in re.sub(r"\\\n", "", text).splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield line


def _local_reference(spec: str) -> str | None:
    """The local path a requirement installs from, if it names one."""
    spec = spec.split(";", 1)[0].strip()  # environment markers
    if direct := _DIRECT_URL.match(spec):
        spec = direct.group(1)
    if spec.startswith("file:"):
        return urllib.request.url2pathname(urllib.parse.urlsplit(spec).path)
    if "://" in spec or not (spec.startswith((".", "/", "~")) or "/" in spec):
        return None  # a name from the index, or a remote URL
    return os.path.expanduser(re.sub(r"\[[^\]]*\]$", "", spec))


def _package_files(path: Path) -> Iterator[tuple[str, Path]]:
    """The files of a local package (or one file), sorted by relative name."""
    if path.is_file():
        yield path.name, path
        return
    found: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(path):
        top = Path(folder) == path
        dirnames[:] = [
            d
            for d in dirnames
            if d not in _NOT_PACKAGE
            and not d.endswith(".egg-info")
            and not (top and d == "build")
        ]
        for name in filenames:
            file = Path(folder) / name
            if not name.endswith((".pyc", ".pyo")):
                found.append((file.relative_to(path).as_posix(), file))
    yield from sorted(found)


# -- the zip -----------------------------------------------------------------


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
    return (
        f"Built {result.path} ({result.runtime.name}, {result.runtime.architecture}, "
        f"{origin}): {summary.files} files, {_mb(summary.size)} zipped, "
        f"{_mb(summary.unzipped)} unzipped, sha256 {summary.sha256}"
    )
