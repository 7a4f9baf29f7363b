"""Dependencies installed inside the AWS SAM build image of the runtime.

For dependencies that must be compiled (no wheel for the runtime's platform),
or that need system packages at build time (``--dependencies``). The image is
the public one ``sam build --use-container`` uses, so the glibc and Python are
the Lambda runtime's own. Only the requirements' folder (read-only) and an
empty output folder are mounted; the zip is made on the host, the same way as
without Docker.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleece.errors import BadInput, FleeceError
from fleece.progress import Progress
from fleece.wheels import Runtime

__all__ = ["build_image", "install_requirements_in_docker"]

IMAGE_REPOSITORY = "public.ecr.aws/sam/build-{runtime}"
_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
REQUIREMENTS_MOUNT = "/fleece/requirements"
OUTPUT_MOUNT = "/fleece/out"

# Amazon Linux 2023 images (python3.12 and later) have dnf, Amazon Linux 2 yum.
# Packages arrive as "$@", so no name is ever parsed by the shell.
_SCRIPT = """\
set -euo pipefail
if [ "$#" -gt 0 ]; then
  if command -v dnf >/dev/null; then dnf install -y "$@"; else yum install -y "$@"; fi
fi
python -m pip install --disable-pip-version-check --no-input --progress-bar=off \\
  --no-compile --target {output} --requirement {requirements}
chown -R {owner} {output}
"""


def build_image(runtime: Runtime) -> str:
    """The SAM build image of ``runtime``, e.g. ``...build-python3.12:latest-arm64``."""
    repository = IMAGE_REPOSITORY.format(runtime=runtime.name)
    return f"{repository}:latest-{runtime.architecture}"


def install_requirements_in_docker(
    requirements: Path,
    runtime: Runtime,
    target: Path,
    system_packages: Sequence[str],
    progress: Progress,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Install ``requirements`` into ``target`` inside the build image.

    ``PIP_*`` variables of ``environ`` are passed to pip in the container.
    """
    import docker
    from docker.errors import DockerException, ImageNotFound

    for package in system_packages:
        if not package or package.startswith("-"):
            raise BadInput(f"--dependencies: {package!r} is not a package name")
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
            requirements,
            target,
            system_packages,
            environ,
            progress,
        )
    except DockerException as error:
        raise FleeceError(f"Docker failed: {_one_line(error)}") from None
    if status != 0:
        raise FleeceError(f"the build in {image} failed (exit {status}): {tail}")


def _run(
    client: Any,
    image: str,
    platform: str,
    requirements: Path,
    target: Path,
    system_packages: Sequence[str],
    environ: Mapping[str, str],
    progress: Progress,
) -> tuple[int, str]:
    target.mkdir(parents=True, exist_ok=True)
    script = _SCRIPT.format(
        output=OUTPUT_MOUNT,
        requirements=f"{REQUIREMENTS_MOUNT}/{requirements.name}",
        owner=f"{os.getuid()}:{os.getgid()}",
    )
    container = client.containers.run(
        image,
        ["/bin/bash", "-c", script, "fleece-build", *system_packages],
        volumes={
            str(requirements.resolve().parent): {
                "bind": REQUIREMENTS_MOUNT,
                "mode": "ro",
            },
            str(target.resolve()): {"bind": OUTPUT_MOUNT, "mode": "rw"},
        },
        environment={k: v for k, v in environ.items() if k.startswith("PIP_")},
        working_dir=REQUIREMENTS_MOUNT,
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
