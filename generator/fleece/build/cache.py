"""The build cache: installed dependencies, and their compressed layer.

It lives in ``$FLEECE_CACHE_DIR``, else ``$XDG_CACHE_HOME/fleece``, else
``~/.cache/fleece``::

    dependencies/<key>/site/       the installed dependencies
    dependencies/<key>/entry.json  their file list, and an id for this install
    layers/<key>-<layer>.zip       those files compressed, with their bytecode
    bytecode/<digest>.pyc          the service's modules, compiled
    interpreters.json              what each candidate Python answered

The key of installed dependencies is everything they depend on: the content of
the requirements file, of the files it includes and of the local packages it
names (not their paths); the runtime's Python and architecture, Docker or not,
the system packages; every ``PIP_*`` variable (only a digest is kept, so an
index URL's token never reaches a folder name or the output); the versions of
fleece and pip; and without Docker the Python and platform pip evaluates
environment markers against.

The layer is the dependencies' part of the zip in its final, compressed form:
a warm build copies it and compresses only the service's own files. Its key
adds the list of files it holds (excludes and the service's own files of the
same name leave some out) and the interpreter that compiled them.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleece import __version__
from fleece.build.bytecode import Compiler, compile_modules
from fleece.build.contents import collect_files, is_excluded
from fleece.build.requirements import RequirementInputs, stage_requirements
from fleece.build.wheels import (
    Host,
    Runtime,
    install_requirements,
    marker_environment,
    marker_mismatches,
)
from fleece.build.ziparchive import write_zip
from fleece.progress import Progress

__all__ = [
    "Dependencies",
    "DependencySettings",
    "bytecode_memo",
    "cache_dir",
    "dependencies",
    "dependency_layer",
    "interpreter_memo",
]

CACHE_FORMAT = 3


def cache_dir() -> Path:
    """Where fleece keeps what builds can share."""
    if explicit := os.environ.get("FLEECE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fleece"


def bytecode_memo() -> Path:
    """The folder of compiled service modules, by content."""
    return cache_dir() / "bytecode"


def interpreter_memo() -> Path:
    """The file remembering what each candidate interpreter is."""
    return cache_dir() / "interpreters.json"


@dataclass(frozen=True)
class DependencySettings:
    """What, besides the requirements, decides what gets installed."""

    runtime: Runtime
    docker: bool = False
    system_packages: tuple[str, ...] = ()
    pip: str | None = None  # the version of pip that installs (None: the image's)
    rebuild: bool = False


@dataclass(frozen=True)
class Dependencies:
    """Installed dependencies in the cache."""

    site: Path  # the installed files
    key: str
    install: str  # this install's id: a reinstall under the same key gets another
    names: tuple[str, ...]  # zip paths of the files (no bytecode, no bin/)
    origin: str  # "cache" or "installed"
    warnings: list[str] = field(default_factory=list)


def dependencies(
    inputs: RequirementInputs,
    settings: DependencySettings,
    scratch: Path,
    progress: Progress,
    environ: Mapping[str, str] = os.environ,
) -> Dependencies:
    """The dependencies ``inputs`` name, from the cache or installed into it."""
    key = _dependency_key(inputs, settings, environ)
    entry = cache_dir() / "dependencies" / key
    if not settings.rebuild and (known := _read_entry(entry)) is not None:
        return Dependencies(entry / "site", key, *known, origin="cache")
    store = cache_dir() / "dependencies"
    store.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".partial-", dir=store))
    try:
        site = fresh / "site"
        staged = scratch / "staged"
        requirements = stage_requirements(inputs, staged)
        if settings.docker:
            from fleece.build.container import install_requirements_in_docker

            install_requirements_in_docker(
                requirements,
                staged,
                settings.runtime,
                site,
                settings.system_packages,
                progress,
                environ=environ,
            )
            warnings = []
        else:
            install_requirements(
                requirements,
                settings.runtime,
                site,
                scratch / "local-wheels",
                progress,
                shown=inputs.files[0],
            )
            warnings = _marker_warnings(inputs, site, settings.runtime)
        _normalise(site)
        names = tuple(sorted(collect_files(site, (), leftovers=False).files))
        install = os.urandom(16).hex()  # any new value: layers of old installs miss
        (fresh / "entry.json").write_text(
            json.dumps({"install": install, "names": names}), encoding="utf-8"
        )
        _store(fresh, entry)
        for stale in (cache_dir() / "layers").glob(f"{key}-*.zip"):
            stale.unlink(missing_ok=True)  # layers of the install just replaced
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return Dependencies(entry / "site", key, install, names, "installed", warnings)


def dependency_layer(
    installed: Dependencies,
    names: Sequence[str],
    compiler: Compiler | None,
    excludes: Sequence[str],
    scratch: Path,
    progress: Progress,
) -> Path:
    """The zip of ``names`` (files of ``installed``) and their bytecode, cached.

    ``excludes`` leaves bytecode out too (``--exclude '*.pyc'``).
    """
    parts = {
        "format": CACHE_FORMAT,
        "install": installed.install,
        "names": hashlib.sha256("\0".join(names).encode()).hexdigest(),
        "compiler": compiler.identity if compiler else None,
        "excludes": sorted(excludes),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    layer = cache_dir() / "layers" / f"{installed.key}-{digest[:32]}.zip"
    if layer.is_file():
        return layer
    entries: dict[str, Path | bytes] = {n: installed.site / n for n in names}
    if compiler is not None:
        progress.begin("compile dependencies")
        modules = {n: installed.site / n for n in names if n.endswith(".py")}
        bytecode = compile_modules(compiler, modules, scratch).bytecode
        entries.update((n, b) for n, b in bytecode.items() if not is_excluded(n, excludes))
    progress.begin("compress dependencies")
    layer.parent.mkdir(parents=True, exist_ok=True)
    partial = layer.with_name(f".{layer.name}.{os.getpid()}.tmp")
    try:
        write_zip(partial, entries)
        os.replace(partial, layer)
    finally:
        partial.unlink(missing_ok=True)
    return layer


def _dependency_key(
    inputs: RequirementInputs,
    settings: DependencySettings,
    environ: Mapping[str, str],
) -> str:
    runtime = settings.runtime
    parts = {
        "format": CACHE_FORMAT,
        "fleece": __version__,
        "requirements": inputs.digest(),
        "python": runtime.python,
        "architecture": runtime.architecture,
        "docker": settings.docker,
        "system": sorted(settings.system_packages),
        "pip": settings.pip,
        "markers": None if settings.docker else asdict(Host.current()),
        "pip_environment": sorted(
            [name, value] for name, value in environ.items() if name.startswith("PIP_")
        ),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read_entry(entry: Path) -> tuple[str, tuple[str, ...]] | None:
    try:
        data = json.loads((entry / "entry.json").read_text(encoding="utf-8"))
        return str(data["install"]), tuple(str(n) for n in data["names"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(fresh: Path, entry: Path) -> None:
    """Put a finished install in the cache in one rename, replacing an old one."""
    if entry.exists():
        stale = entry.with_name(f".stale-{entry.name}-{os.getpid()}")
        os.replace(entry, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(fresh, entry)
    except OSError:
        if not entry.is_dir():  # not another build having stored it just now
            raise


def _normalise(site: Path) -> None:
    """Leave out what records how this machine installed, not what it installed.

    Console scripts (``bin/``) point at this machine's Python. pip writes into
    each ``*.dist-info`` the installer's name (``INSTALLER``), whether the
    package was asked for by name (``REQUESTED``) and where a local package
    came from (``direct_url.json``, a ``file:`` URL of the build's scratch
    folder, which would make the zip depend on where the build ran): none of
    it means anything on Lambda, and the wheels themselves hold none of it.
    """
    shutil.rmtree(site / "bin", ignore_errors=True)
    for info in site.glob("*.dist-info"):
        dropped = [info / "INSTALLER", info / "REQUESTED"]
        if _installed_from_a_file(info / "direct_url.json"):
            dropped.append(info / "direct_url.json")
        for path in dropped:
            path.unlink(missing_ok=True)
        record = info / "RECORD"
        if record.is_file():
            # "../../bin/..." lines list the console scripts left out above.
            gone = ("../", *(f"{info.name}/{path.name}," for path in dropped))
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if not line.startswith(gone)]
            record.write_text("".join(kept), encoding="utf-8")


def _installed_from_a_file(direct_url: Path) -> bool:
    try:
        url = json.loads(direct_url.read_text(encoding="utf-8"))["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(url, str) and url.startswith("file:")


def _marker_warnings(inputs: RequirementInputs, site: Path, runtime: Runtime) -> list[str]:
    requirements = [
        line.value
        for file in inputs.tree
        for line in file.lines
        if line.option in (None, "-e") and not line.value.startswith("-")
    ]
    missing = marker_mismatches(requirements, site, marker_environment(runtime))
    if not missing:
        return []
    return [
        f"pip evaluated environment markers for this machine ({Host.current().describe()}), "
        f"and for {runtime.name} on {runtime.architecture} they ask for what was not "
        f"installed: {'; '.join(missing)}: build with --docker"
    ]
