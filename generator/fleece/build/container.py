"""Dependencies installed inside the AWS SAM build image of the runtime.

For dependencies that must be compiled (no wheel for the runtime's platform),
or that need system packages at build time (``--dependencies``). The image is
the public one ``sam build --use-container`` uses, so the glibc and Python are
the Lambda runtime's own. The service folder is mounted read-only and an
empty output folder read-write; the zip is made on the host, the same way as
without Docker.

pip builds a local package in its own folder, so the container copies the
files the requirements read (``RequirementInputs`` of ``fleece.build.artifact``) from the
read-only mount to a writable folder, keeping their relative places, and runs
pip from the requirements file's folder there, as it runs without Docker: the
relative paths of ``-r ../common.txt``, ``-c ../constraints.txt`` and
``../libs/pkg`` mean the same in both builds.
"""

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from fleece.build.wheels import Runtime
from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress

__all__ = ["build_image", "container_script", "install_requirements_in_docker"]

IMAGE_REPOSITORY = "public.ecr.aws/sam/build-{runtime}"
_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
SERVICE_MOUNT = "/fleece/service"
OUTPUT_MOUNT = "/fleece/out"
WORK_FOLDER = "/tmp/fleece-service"

# The container runs as root: the trap gives the output back to the user on
# failure too, or the cache would keep root-owned files it cannot delete.
# Amazon Linux 2023 images (python3.12 and later) have dnf, Amazon Linux 2 yum.
# Packages arrive as "$@", so no name is ever parsed by the shell; paths are
# quoted with shlex.
_SCRIPT = """\
set -euo pipefail
give_back() {{ chown -R {owner} {output}; }}
trap give_back EXIT
if [ "$#" -gt 0 ]; then
  if command -v dnf >/dev/null; then dnf install -y "$@"; else yum install -y "$@"; fi
fi
mkdir -p {work}
cd {service}
cp -a --parents -- {inputs} {work}/
cd {work}/{folder}
python -m pip install --disable-pip-version-check --no-input --progress-bar=off \\
  --no-compile --target {output} --requirement {requirements}
"""


def build_image(runtime: Runtime) -> str:
    """The SAM build image of ``runtime``, e.g. ``...build-python3.12:latest-arm64``."""
    repository = IMAGE_REPOSITORY.format(runtime=runtime.name)
    return f"{repository}:latest-{runtime.architecture}"


def container_script(
    requirements: str,
    inputs: Sequence[str],
    owner: str,
    *,
    service: str = SERVICE_MOUNT,
    output: str = OUTPUT_MOUNT,
    work: str = WORK_FOLDER,
) -> str:
    """The bash script run in the build image.

    ``requirements`` and ``inputs`` are paths relative to the ``service``
    folder; ``owner`` is ``uid:gid`` of the user running fleece.
    """
    relative = PurePosixPath(requirements)
    return _SCRIPT.format(
        owner=shlex.quote(owner),
        output=shlex.quote(output),
        work=shlex.quote(work),
        service=shlex.quote(service),
        inputs=" ".join(shlex.quote(path) for path in inputs),
        folder=shlex.quote(str(relative.parent)),
        requirements=shlex.quote(relative.name),
    )


def install_requirements_in_docker(
    requirements: Path,
    runtime: Runtime,
    target: Path,
    system_packages: Sequence[str],
    progress: Progress,
    *,
    service: Path,
    inputs: Sequence[Path],
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Install ``requirements`` into ``target`` inside the build image.

    ``service`` is mounted; ``inputs`` are the files the requirements read
    (all inside ``service``). ``PIP_*`` variables of ``environ`` are passed to
    pip in the container.
    """
    import docker
    from docker.errors import DockerException, ImageNotFound

    for package in system_packages:
        if not package or package.startswith("-"):
            raise BadInput(f"--dependencies: {package!r} is not a package name")
    root = service.resolve()
    script = container_script(
        _inside(requirements.resolve(), root),
        sorted({_inside(path.resolve(), root) for path in inputs}),
        f"{os.getuid()}:{os.getgid()}",
    )
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
        progress.begin("install in container")
        status, tail = _run(
            client,
            image,
            platform,
            script,
            root,
            target,
            system_packages,
            environ,
            progress,
        )
    except DockerException as error:
        raise FleeceError(f"Docker failed: {_one_line(error)}") from None
    if status != 0:
        raise FleeceError(f"the build in {image} failed (exit {status}): {tail}")


def _inside(path: Path, root: Path) -> str:
    """``path`` relative to the mounted ``root``; bad input when outside it."""
    if not path.is_relative_to(root):
        raise BadInput(
            f"{path}: outside the service folder {root}, the only folder the "
            "Docker build sees; move it into the service, or build without --docker"
        )
    return path.relative_to(root).as_posix()


def _run(
    client: Any,
    image: str,
    platform: str,
    script: str,
    service: Path,
    target: Path,
    system_packages: Sequence[str],
    environ: Mapping[str, str],
    progress: Progress,
) -> tuple[int, str]:
    target.mkdir(parents=True, exist_ok=True)
    container = client.containers.run(
        image,
        ["/bin/bash", "-c", script, "fleece-build", *system_packages],
        volumes={
            str(service): {"bind": SERVICE_MOUNT, "mode": "ro"},
            str(target.resolve()): {"bind": OUTPUT_MOUNT, "mode": "rw"},
        },
        environment={k: v for k, v in environ.items() if k.startswith("PIP_")},
        working_dir=SERVICE_MOUNT,
        platform=platform,
        detach=True,
    )
    tail = ""
    try:
        for chunk in container.logs(stream=True, follow=True):
            for line in chunk.decode("utf-8", "replace").splitlines():
                if line.strip():
                    tail = line.strip()
                    progress.detail(tail)
        status = int(container.wait().get("StatusCode", 1))
    finally:
        container.remove(force=True)
    return status, tail


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
