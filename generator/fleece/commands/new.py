"""``fleece new``: the command line of fleece.new."""

from pathlib import Path

import click

from fleece import __version__
from fleece.service.new import NewService, create_service


@click.command("new")
@click.argument("name")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--template",
    "-t",
    default="service",
    show_default=True,
    help="Bundled template to render (or a template folder).",
)
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="KEY=VALUE",
    help="Answer a question without a prompt; repeatable.",
)
@click.option(
    "--defaults",
    is_flag=True,
    help="Take the default answer of every question not given by --data.",
)
@click.option(
    "--no-git", is_flag=True, help="Do not make the service a git repository."
)
@click.option("--force", is_flag=True, help="Render into DEST even if it is not empty.")
def command(
    name: str,
    dest: Path | None,
    template: str,
    data: tuple[str, ...],
    defaults: bool,
    no_git: bool,
    force: bool,
) -> None:
    """Create the Lambda service NAME in DEST (default: ./NAME).

    \b
    Questions (answer them with --data KEY=VALUE):
      project_name, package_name, description,
      python_runtime  python3.12 (default), python3.13, python3.14
      architecture    x86_64 (default), arm64
      api_style       none (default), router, openapi
      tracing         true (default), false
      memory_size     MB, 128 to 10240 (default 256)
      timeout         seconds, 1 to 900 (default 30)

    \b
    Example:
      fleece new orders --defaults --data api_style=router --data architecture=arm64
    """
    created = create_service(
        NewService(
            name=name,
            destination=dest,
            template=template,
            data=data,
            defaults=defaults,
            git=not no_git,
            force=force,
        )
    )
    shape = ", ".join(
        str(created.answers[key])
        for key in ("python_runtime", "architecture", "api_style")
        if key in created.answers
    )
    name = created.answers.get("project_name", "the service")
    click.echo(f"Created {name} in {created.path}" + (f" ({shape})." if shape else "."))
    if created.overwritten:
        click.echo(f"Overwrote (--force): {', '.join(created.overwritten)}")
    if created.enclosing_repository is not None:
        click.echo(
            f"Inside the git repository {created.enclosing_repository}: "
            "made no new one; commit the service there."
        )
    click.echo("Next:")
    click.echo(f"  cd {created.path}")
    # The dev extra pins this fleece's version: an environment that holds it
    # (this one) satisfies the pin wherever the release is not on the index.
    click.echo(
        f"  pip install -e '.[dev]'    # in an environment with fleece {__version__}"
    )
    click.echo("  pytest")
