"""Dependencies installed, and modules compiled, inside the AWS SAM build image.

For dependencies that must be compiled (no wheel for the runtime's platform),
or that need system packages at build time (``--dependencies``). The image is
the public one ``sam build --use-container`` uses, so the glibc and Python are
the Lambda runtime's own. The zip is made on the host, the same way as
without Docker.

pip installs from the staged copy of the requirements and local packages
(``fleece.build.requirements.stage_requirements``), which holds absolute paths:
the container mounts that folder at the same path, read-write (pip builds a
local package inside its folder), and an empty output folder. Nothing of the
service itself is mounted, and the requirements may name files anywhere.

When no interpreter of the runtime's version is found on this machine, the
image also compiles the zip's modules (``container_compiler``).
"""

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from fleece.build.bytecode import WORKER, Compiler
from fleece.build.wheels import Runtime
from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress

__all__ = [
    "build_image",
    "container_compiler",
    "container_script",
    "install_requirements_in_docker",
]

IMAGE_REPOSITORY = "public.ecr.aws/sam/build-{runtime}"
_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
OUTPUT_MOUNT = "/fleece/out"
COMPILE_MOUNT = "/fleece/compile"

# The container runs as root: the trap gives the output and the staged folder
# back to the user on failure too, or the cache would keep root-owned files it
# cannot delete. Amazon Linux 2023 images (python3.12 and later) have dnf,
# Amazon Linux 2 yum. Packages arrive as "$@", so no name is ever parsed by the
# shell; paths are quoted with shlex.
_SCRIPT = """\
set -euo pipefail
give_back() {{ chown -R {owner} {output} {staged}; }}
trap give_back EXIT
if [ "$#" -gt 0 ]; then
  if command -v dnf >/dev/null; then dnf install -y "$@"; else yum install -y "$@"; fi
fi
cd {folder}
python -m pip install --disable-pip-version-check --no-input --progress-bar=off \\
  --no-compile --target {output} --requirement {requirements}
"""


def build_image(runtime: Runtime) -> str:
    """The SAM build image of ``runtime``, e.g. ``...build-python3.12:latest-arm64``."""
    repository = IMAGE_REPOSITORY.format(runtime=runtime.name)
    return f"{repository}:latest-{runtime.architecture}"


def container_script(
    requirements: str, staged: str, owner: str, *, output: str = OUTPUT_MOUNT
) -> str:
    """The bash script that installs in the build image.

    ``requirements`` is the staged requirements file, inside the ``staged``
    folder (both absolute, the same in the container); ``owner`` is
    ``uid:gid`` of the user running fleece.
    """
    path = PurePosixPath(requirements)
    return _SCRIPT.format(
        owner=shlex.quote(owner),
        output=shlex.quote(output),
        staged=shlex.quote(staged),
        folder=shlex.quote(str(path.parent)),
        requirements=shlex.quote(path.name),
    )


def install_requirements_in_docker(
    requirements: Path,
    staged: Path,
    runtime: Runtime,
    target: Path,
    system_packages: Sequence[str],
    progress: Progress,
    *,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Install the staged ``requirements`` into ``target`` inside the build image.

    ``staged`` is the folder ``stage_requirements`` filled, which holds
    ``requirements``. ``PIP_*`` variables of ``environ`` are passed to pip in
    the container.
    """
    for package in system_packages:
        if not package or package.startswith("-"):
            raise BadInput(f"--dependencies: {package!r} is not a package name")
    requirements, staged = requirements.resolve(), staged.resolve()
    script = container_script(
        requirements.as_posix(), staged.as_posix(), f"{os.getuid()}:{os.getgid()}"
    )
    target.mkdir(parents=True, exist_ok=True)
    status, tail = _in_container(
        runtime,
        progress,
        "install in container",
        ["/bin/bash", "-c", script, "fleece-build", *system_packages],
        volumes={
            str(staged): {"bind": staged.as_posix(), "mode": "rw"},
            str(target.resolve()): {"bind": OUTPUT_MOUNT, "mode": "rw"},
        },
        environment={k: v for k, v in environ.items() if k.startswith("PIP_")},
        working_dir=staged.as_posix(),
    )
    if status != 0:
        raise FleeceError(f"the build in {build_image(runtime)} failed (exit {status}): {tail}")


def container_compiler(runtime: Runtime, progress: Progress) -> Compiler:
    """A compiler running the build image's Python; it sees only the job folder."""

    def run(arguments: Sequence[str], folder: Path) -> tuple[int, list[str]]:
        lines: list[str] = []
        status, _ = _in_container(
            runtime,
            progress,
            "compile in container",
            ["python", "-S", "-c", WORKER, *arguments],
            volumes={str(folder.resolve()): {"bind": COMPILE_MOUNT, "mode": "rw"}},
            environment={"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"},
            working_dir=COMPILE_MOUNT,
            user=f"{os.getuid()}:{os.getgid()}",
            lines=lines.append,
        )
        return status, lines

    image = build_image(runtime)
    tag = "cpython-" + runtime.python.replace(".", "")
    return Compiler(
        python=runtime.python,
        tag=tag,
        identity=image,
        name=image,
        where=image,
        run=run,
        sees_host_files=False,
    )


def _in_container(
    runtime: Runtime,
    progress: Progress,
    step: str,
    command: list[str],
    lines: Callable[[str], None] | None = None,
    **options: Any,
) -> tuple[int, str]:
    """Run ``command`` in the build image (pulled if missing): its exit status
    and last line of output; ``lines`` receives every line."""
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        client = docker.from_env()
    except DockerException:
        raise FleeceError(
            "no Docker engine answered: start Docker, or build without --docker"
        ) from None
    image = build_image(runtime)
    platform = _PLATFORMS[runtime.architecture]
    try:
        try:
            client.images.get(image)
        except ImageNotFound:
            progress.begin("pull build image")
            progress.detail(image)
            repository, tag = image.rsplit(":", 1)
            client.images.pull(repository, tag=tag, platform=platform)
        progress.begin(step)
        container = client.containers.run(
            image, command, platform=platform, detach=True, **options
        )
        tail, pending = "", ""
        try:
            for chunk in container.logs(stream=True, follow=True):
                # A chunk may end inside a line: keep its start for the next one.
                *complete, pending = (pending + chunk.decode("utf-8", "replace")).split("\n")
                for line in complete:
                    if line.strip():
                        tail = line.strip()
                        progress.detail(tail)
                        if lines is not None:
                            lines(line)
            if pending.strip():
                tail = pending.strip()
                if lines is not None:
                    lines(pending)
            status = int(container.wait().get("StatusCode", 1))
        finally:
            container.remove(force=True)
    except DockerException as error:
        raise FleeceError(f"Docker failed: {_one_line(error)}") from None
    return status, tail


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
