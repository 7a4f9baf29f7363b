"""``fleece build``: the deployment zip of a service.

The straight line of a build:

1. settings: flags, else the service's answers (runtime, architecture), else
   the defaults (``src/``, ``src/requirements.txt``, ``dist/``, python3.12, x86_64);
2. dependencies: from the cache when the same requirements were installed for
   the same runtime before, else installed (``fleece.wheels`` without Docker,
   ``fleece.docker_build`` with it) and stored in the cache;
3. the zip: dependencies and source at its root, excludes applied to both,
   reproducible (``fleece.ziparchive``), checked against Lambda's size limits,
   then moved into place (an older zip stays if anything fails).

The dependency cache lives in ``$FLEECE_CACHE_DIR``, else
``$XDG_CACHE_HOME/fleece``, else ``~/.cache/fleece``. Its key is the content of
the requirements file (and of the files it includes with ``-r``/``-c``), the
Python version, the architecture, Docker or not, and the system packages.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleece import __version__
from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress
from fleece.service import ANSWERS_FILE, load_answers
from fleece.wheels import Runtime, install_requirements, parse_runtime
from fleece.ziparchive import ZipSummary, collect_files, write_zip

__all__ = [
    "UNZIPPED_LIMIT",
    "ZIPPED_LIMIT",
    "BuildRequest",
    "BuildResult",
    "build",
    "cache_dir",
    "describe",
]

ZIP_NAME = "lambda_function.zip"
BUILD_INFO = "build_info.json"
MB = 1024 * 1024
ZIPPED_LIMIT = 50 * MB  # direct upload of a zip
UNZIPPED_LIMIT = 250 * MB  # the function and its layers, extracted
NEAR_LIMIT = 0.8  # warn from this share of a limit on
_CACHE_FORMAT = 1


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
    with tempfile.TemporaryDirectory(prefix="fleece-build-") as scratch:
        if plan.requirements is None:
            dependencies, origin = None, "none"
        else:
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
            warnings = _check_limits(summary)
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
    store = cache_dir() / "dependencies"
    key = _cache_key(requirements, runtime, request.docker, request.dependencies)
    cached = store / key
    if cached.is_dir() and not request.rebuild:
        return cached, "cache"
    store.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".partial-", dir=store))
    try:
        if request.docker:
            from fleece.docker_build import install_requirements_in_docker

            install_requirements_in_docker(
                requirements, runtime, fresh, request.dependencies, progress
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
    requirements: Path, runtime: Runtime, docker: bool, system: tuple[str, ...]
) -> str:
    parts = {
        "format": _CACHE_FORMAT,
        "requirements": _requirements_digest(requirements, set()),
        "python": runtime.python,
        "architecture": runtime.architecture,
        "docker": docker,
        "system": sorted(system),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)")


def _requirements_digest(path: Path, seen: set[Path]) -> str:
    """A digest of a requirements file and the files it includes."""
    path = path.resolve()
    if path in seen:
        return ""
    seen.add(path)
    text = path.read_bytes()
    digest = hashlib.sha256(text)
    for line in text.decode("utf-8", "replace").splitlines():
        included = _INCLUDE.match(line)
        if included and (path.parent / included.group(1)).is_file():
            nested = _requirements_digest(path.parent / included.group(1), seen)
            digest.update(nested.encode())
    return digest.hexdigest()


# -- the zip -----------------------------------------------------------------


def _check_limits(summary: ZipSummary) -> list[str]:
    checks = [
        ("zipped", summary.size, ZIPPED_LIMIT),
        ("unzipped", summary.unzipped, UNZIPPED_LIMIT),
    ]
    warnings = []
    for what, size, limit in checks:
        if size > limit:
            raise FleeceError(
                f"the zip is {_mb(size)} {what}, past Lambda's {_mb(limit)} limit: "
                "leave files out with --exclude or move dependencies to a layer"
            )
        if size >= NEAR_LIMIT * limit:
            warnings.append(
                f"the zip is {_mb(size)} {what}, near Lambda's {_mb(limit)} limit"
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
