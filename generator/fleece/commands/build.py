"""``fleece build``: the command line of fleece.build."""

from pathlib import Path

import click

from fleece.build.artifact import BuildRequest, build, describe
from fleece.build.wheels import SUPPORTED_PYTHONS
from fleece.progress import Progress

_PATH = click.Path(path_type=Path)


@click.command("build")
@click.argument(
    "service_dir", required=False, default=Path("."), type=click.Path(path_type=Path)
)
@click.option(
    "--source", type=_PATH, help="Code folder to zip. Default: SERVICE_DIR/src."
)
@click.option(
    "--requirements",
    type=_PATH,
    help="Requirements file. Default: SOURCE/requirements.txt (none: no dependencies).",
)
@click.option(
    "--target",
    type=_PATH,
    help="Folder for lambda_function.zip. Default: SERVICE_DIR/dist.",
)
@click.option(
    "--output-dir",
    type=_PATH,
    help="Put the zip's files in this empty or new folder instead of a zip "
    "(sam build: --output-dir $(ARTIFACTS_DIR)).",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out files: a glob without / matches names at any depth "
    "(*.md, tests), one with / paths from the zip root. Repeatable.",
)
@click.option(
    "--python",
    help=f"Lambda Python version ({', '.join(SUPPORTED_PYTHONS)}). "
    "Default: the service's python_runtime.",
)
@click.option(
    "--arch",
    "architecture",
    type=click.Choice(["x86_64", "arm64"]),
    help="Lambda architecture. Default: the service's architecture.",
)
@click.option(
    "--docker",
    is_flag=True,
    help="Install dependencies inside the AWS SAM build image of the runtime.",
)
@click.option(
    "--dependencies",
    metavar="PKG,...",
    default="",
    help="System packages to install in the build image first (with --docker).",
)
@click.option("--rebuild", is_flag=True, help="Ignore the dependency cache.")
@click.option(
    "--no-compile",
    is_flag=True,
    help="Ship no bytecode: Lambda then compiles every module at each cold start.",
)
@click.option(
    "--inject-build-info",
    is_flag=True,
    help="Add build_info.json (commit and build time) to the zip; the zip then "
    "differs from build to build.",
)
def command(
    service_dir: Path,
    source: Path | None,
    requirements: Path | None,
    target: Path | None,
    output_dir: Path | None,
    excludes: tuple[str, ...],
    python: str | None,
    architecture: str | None,
    docker: bool,
    dependencies: str,
    rebuild: bool,
    no_compile: bool,
    inject_build_info: bool,
) -> None:
    """Build SERVICE_DIR/dist/lambda_function.zip: dependencies and code at its root.

    Without --docker, pip fetches the wheels made for the Lambda runtime's Python
    and architecture, so it works on any machine. Every module gets bytecode for
    the runtime's Python when an interpreter of that version is found. Two builds
    of the same inputs give byte-identical zips; installed dependencies are
    cached, compressed, between builds.
    """
    request = BuildRequest(
        service_dir=service_dir,
        source=source,
        requirements=requirements,
        target=target,
        output_dir=output_dir,
        excludes=excludes,
        python=python,
        architecture=architecture,
        docker=docker,
        dependencies=tuple(p.strip() for p in dependencies.split(",") if p.strip()),
        rebuild=rebuild,
        inject_build_info=inject_build_info,
        compile=not no_compile,
    )
    with Progress.on_terminal() as progress:
        result = build(request, progress)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(describe(result))
