"""Dependencies for a Lambda runtime, installed without Docker.

pip runs on this machine but is told the target: the runtime's Python version
and ABI, and the manylinux platform tags its glibc supports on its
architecture. With ``--only-binary=:all:`` pip then picks exactly the wheels
Lambda can load, whatever machine fleece runs on. A dependency published only as
a source distribution is built into a wheel here; that is right only when the
wheel is pure Python (``none-any``), so a compiled one is refused with a pointer
to ``--docker``.

pip evaluates environment markers (``; python_version < "3.12"``) against the
Python running fleece, not the target one; ``marker_mismatches`` finds the
requirements that came out differently for the target and that nothing
installed satisfies, so the build can warn (the Docker build has no such gap).

pip installs from the copy ``fleece.build.requirements.stage_requirements``
makes, and runs in its folder.
"""

import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress

__all__ = [
    "SUPPORTED_PYTHONS",
    "Host",
    "Runtime",
    "install_requirements",
    "installed_pip",
    "marker_environment",
    "marker_mismatches",
    "parse_runtime",
    "pip_version",
]

# glibc of each Lambda Python runtime: Amazon Linux 2 for 3.11, 2023 after.
# (`fleece new` no longer offers 3.11; building for it still works.)
SUPPORTED_PYTHONS: dict[str, tuple[int, int]] = {
    "3.11": (2, 26),
    "3.12": (2, 34),
    "3.13": (2, 34),
    "3.14": (2, 34),
}
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
# The oldest glibc a manylinux tag exists for, per machine.
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}
_LEGACY_TAGS = {"x86_64": ["manylinux2014", "manylinux2010", "manylinux1"]}


@dataclass(frozen=True)
class Runtime:
    """A Lambda Python runtime on one architecture."""

    python: str  # "3.12"
    architecture: str  # "x86_64" or "arm64", as Lambda spells it

    @property
    def name(self) -> str:
        """The Lambda runtime identifier, e.g. ``python3.12``."""
        return f"python{self.python}"

    @property
    def machine(self) -> str:
        """The machine name in platform tags and ``uname -m``."""
        return ARCHITECTURES[self.architecture]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def glibc(self) -> tuple[int, int]:
        return SUPPORTED_PYTHONS[self.python]

    def platform_tags(self) -> list[str]:
        """Every manylinux tag the runtime loads, newest first.

        pip expands only the legacy ``manylinux2014`` alias by itself, so the
        ``manylinux_2_N`` tags up to the runtime's glibc are listed one by one.
        """
        major, newest = self.glibc
        oldest = _OLDEST_GLIBC_MINOR[self.machine]
        tags = [
            f"manylinux_{major}_{minor}_{self.machine}"
            for minor in range(newest, oldest - 1, -1)
        ]
        legacy = _LEGACY_TAGS.get(self.machine, ["manylinux2014"])
        return tags + [f"{tag}_{self.machine}" for tag in legacy]

    def describe(self) -> str:
        """The platform in a user's words, for messages."""
        major, minor = self.glibc
        return f"{self.name} on {self.architecture} (manylinux glibc {major}.{minor} {self.machine})"


def parse_runtime(python: str, architecture: str) -> Runtime:
    """Validate ``--python`` (``3.12`` or ``python3.12``) and ``--arch``."""
    version = python.removeprefix("python")
    if version not in SUPPORTED_PYTHONS:
        known = ", ".join(SUPPORTED_PYTHONS)
        raise BadInput(f"unsupported Python {python!r}: Lambda runtimes are {known}")
    if architecture not in ARCHITECTURES:
        raise BadInput(
            f"unsupported architecture {architecture!r}: use x86_64 or arm64"
        )
    return Runtime(version, architecture)


# -- environment markers -----------------------------------------------------


@dataclass(frozen=True)
class Host:
    """What pip evaluates environment markers against when run on this machine."""

    python: str  # python_version, "3.11"
    platform: str  # sys_platform, "linux"
    machine: str  # platform_machine, "x86_64"

    @classmethod
    def current(cls) -> "Host":
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return cls(version, sys.platform, platform.machine())

    def describe(self) -> str:
        return f"Python {self.python} on {self.platform} {self.machine}"


def marker_environment(runtime: Runtime) -> dict[str, str]:
    """The values of environment markers on ``runtime`` (PEP 508).

    The kernel's release and version and the runtime's patch release cannot be
    known here: the first two are this machine's, the last ``.0`` unless this
    machine runs the same minor version.
    """
    environment = _host_environment()
    if environment["python_version"] != runtime.python:
        environment["python_full_version"] = f"{runtime.python}.0"
        environment["implementation_version"] = f"{runtime.python}.0"
    environment.update(
        implementation_name="cpython",
        platform_python_implementation="CPython",
        python_version=runtime.python,
        os_name="posix",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine=runtime.machine,
    )
    return environment


def marker_mismatches(
    requirements: Sequence[str],
    installed: Path,
    target: Mapping[str, str],
    host: Mapping[str, str] | None = None,
) -> list[str]:
    """Requirements that ``target`` needs, that this machine's markers left out,
    and that nothing installed satisfies.

    ``requirements`` are the lines of the requirements files; the
    ``Requires-Dist`` of every distribution in ``installed`` are checked too.
    ``host`` defaults to the environment of the Python running pip (fleece's).
    A requirement this machine needs and the target does not is only an extra
    package in the zip, and is not reported.
    """
    from importlib.metadata import distributions

    from packaging.markers import (
        InvalidMarker,
        Marker,
        UndefinedComparison,
        UndefinedEnvironmentName,
    )
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    host = host if host is not None else _host_environment()
    versions = {}
    wanted: list[tuple[str, str, str]] = []  # (shown, marker, requirement)
    for distribution in distributions(path=[str(installed)]):
        name = canonicalize_name(distribution.metadata["Name"] or "")
        versions[name] = distribution.version
        for line in distribution.requires or []:
            spec, _, condition = line.partition(";")
            shown = f"{line.strip()} (required by {distribution.metadata['Name']})"
            wanted.append((shown, condition, spec))
    for line in requirements:
        spec, _, condition = line.partition(";")
        wanted.append((line, condition.split(" --", 1)[0], spec))
    missing = []
    for shown, marker_text, spec in wanted:
        if not marker_text.strip():
            continue
        try:
            marker = Marker(marker_text.strip())
            if not marker.evaluate({**target, "extra": ""}) or marker.evaluate(
                {**host, "extra": ""}
            ):
                continue
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue  # a marker pip cannot evaluate either: pip says so
        try:
            requirement = Requirement(spec.strip())
        except InvalidRequirement:
            missing.append(shown)  # a path or URL: cannot tell, so say it
            continue
        version = versions.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(
            version, prereleases=True
        ):
            missing.append(shown)
    return sorted(set(missing))


def _host_environment() -> dict[str, str]:
    """The values of environment markers for the Python running fleece (and pip)."""
    from packaging.markers import default_environment

    return {name: str(value) for name, value in default_environment().items()}


# -- pip ---------------------------------------------------------------------

_PIP_VERSION = "import pip; print(pip.__version__)"


def installed_pip() -> str | None:
    """The version of pip installed beside fleece, read from its metadata (no
    process started: for cache keys); None without pip."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pip")
    except PackageNotFoundError:
        return None


def pip_version(python: str | None = None) -> str:
    """The version of pip that ``python`` (default: fleece's) runs; a
    ``FleeceError`` without pip.

    fleece does not depend on pip (a ``uv tool install`` has none), so a build
    without Docker checks for it before anything else.
    """
    python = python or sys.executable
    try:
        run = subprocess.run(
            [python, "-c", _PIP_VERSION],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        run = None
    if run is None or run.returncode != 0:
        raise FleeceError(
            f"pip is not installed in fleece's Python ({python}): install pip "
            "into fleece's environment (uv: uv tool install --with pip fleece), "
            "or build with --docker"
        )
    return run.stdout.strip()


_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
_MAX_SOURCE_BUILDS = 50
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class _PipRun:
    returncode: int
    output: list[str]

    def error_line(self) -> str:
        errors = [line for line in self.output if line.startswith("ERROR:")]
        last = (errors or self.output or ["(no output)"])[-1]
        return last.removeprefix("ERROR:").strip()


def install_requirements(
    requirements: Path,
    runtime: Runtime,
    target: Path,
    local_wheels: Path,
    progress: Progress,
    shown: Path | None = None,
) -> None:
    """Install ``requirements`` for ``runtime`` into the folder ``target``.

    ``local_wheels`` receives wheels built from pure-Python source
    distributions; pip finds them there on the next attempt. ``shown`` is the
    requirements file messages name (``requirements`` may be a staged copy).
    """
    pip_version()  # a clear error, before anything, when there is no pip to run
    requirements, target = requirements.resolve(), target.resolve()
    local_wheels = local_wheels.resolve()
    local_wheels.mkdir(parents=True, exist_ok=True)
    folder = requirements.parent
    built: set[str] = set()
    for _ in range(_MAX_SOURCE_BUILDS):
        args = _install_args(requirements, runtime, target, local_wheels)
        run = _pip(args, folder, progress)
        if run.returncode == 0:
            return
        missing = _NO_DISTRIBUTION.search("\n".join(run.output))
        if missing is None:
            raise FleeceError(
                f"pip could not install {shown or requirements}: {run.error_line()}"
            )
        spec = missing.group(1)
        if spec in built:
            raise BadInput(
                f"{spec}: the wheel built from its source distribution does not "
                f"suit {runtime.describe()}"
            )
        _build_pure_wheel(spec, runtime, local_wheels, folder, progress)
        built.add(spec)
    raise FleeceError("too many dependencies need building from source")


def _install_args(
    requirements: Path, runtime: Runtime, target: Path, local_wheels: Path
) -> list[str]:
    return [
        "install",
        "--no-compile",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={runtime.python}",
        f"--abi={runtime.abi}",
        *(f"--platform={tag}" for tag in runtime.platform_tags()),
        "--find-links",
        str(local_wheels),
        "--requirement",
        str(requirements),
    ]


def _build_pure_wheel(
    spec: str, runtime: Runtime, local_wheels: Path, folder: Path, progress: Progress
) -> None:
    name = _PROJECT_NAME.match(spec)
    before = set(local_wheels.glob("*.whl"))
    # Source only for this project: its build backend still comes as wheels.
    no_binary = f"--no-binary={name.group(0) if name else ':all:'}"
    run = _pip(
        ["wheel", "--no-deps", no_binary, "--wheel-dir", str(local_wheels), spec],
        folder,
        progress,
    )
    if run.returncode != 0:
        if _NO_DISTRIBUTION.search("\n".join(run.output)):
            raise BadInput(
                f"{spec}: no wheel for {runtime.describe()} and no source "
                "distribution to build one from; check its name and version"
            )
        raise FleeceError(
            f"{spec}: no wheel for {runtime.describe()}, and building its source "
            f"distribution failed: {run.error_line()}"
        )
    for wheel in set(local_wheels.glob("*.whl")) - before:
        if not wheel.name.endswith("-none-any.whl"):
            wheel.unlink()
            raise BadInput(
                f"{spec}: no wheel for {runtime.describe()}, and its source "
                "distribution compiles code for this machine only; build with "
                "--docker, or pick a version that publishes this wheel"
            )


def _pip(args: Sequence[str], folder: Path, progress: Progress) -> _PipRun:
    """Run pip in ``folder``, its output read line by line into the progress."""
    command = [
        sys.executable,
        "-m",
        "pip",
        *args[:1],
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar=off",
        *args[1:],
    ]
    output: list[str] = []
    step = 0
    progress.begin(_STEPS[args[0]][0])
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=folder,
    ) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if not line:
                continue
            output.append(line)
            # pip interleaves resolving and downloading: steps only move forward.
            step = max(step, _step_of(line.strip()))
            progress.begin(_STEPS[args[0]][min(step, len(_STEPS[args[0]]) - 1)])
            progress.detail(line)
    return _PipRun(process.returncode, output)


_STEPS = {
    "install": ["resolve", "download", "install"],
    "wheel": ["build from source"],
}


def _step_of(line: str) -> int:
    if line.startswith(("Downloading", "Using cached", "Saved", "File was")):
        return 1
    if line.startswith(("Installing", "Successfully installed")):
        return 2
    return 0
