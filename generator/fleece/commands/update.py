"""``fleece update``: the command line of fleece.update."""

from pathlib import Path

import click

from fleece.commands import service_path
from fleece.service.update import (
    GeneratedFileEdited,
    UpdateRequest,
    UpdateResult,
    update_service,
)


@click.command("update")
@service_path
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change an answer (e.g. api_style=router); repeatable.",
)
@click.option(
    "--template",
    "-t",
    default=None,
    metavar="NAME|PATH",
    help="Template to render (bundled name or folder); default: the one the "
    "service records, else 'service'.",
)
@click.option(
    "--pretend",
    is_flag=True,
    help="Print the unified diff of what would change; write nothing. Exit 1 if "
    "it would leave conflicts.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite a hand-edited src/fleece_runtime.py instead of stopping.",
)
def command(
    path: Path, data: tuple[str, ...], template: str | None, pretend: bool, force: bool
) -> int:
    """Re-render the service in PATH (default: .) with this fleece, keeping your edits.

    \b
    Your files are merged three ways: the pristine render in .fleece/base/,
    your file, and the new render. Your edits stay, template changes arrive,
    real conflicts get git's <<<<<<< ======= >>>>>>> markers (exit 1 until
    resolved). src/fleece_runtime.py is replaced. Needs a clean git tree
    (except --pretend); review the result with `git diff`, then commit.

    \b
    Examples:
      fleece update
      fleece update --pretend
      fleece update --data api_style=router
    """
    request = UpdateRequest(
        path=path, data=data, template=template, pretend=pretend, force=force
    )
    try:
        result = update_service(request)
    except GeneratedFileEdited as error:
        click.echo(error.diff, nl=False)
        raise
    if pretend:
        click.echo(result.diff(), nl=False)
        _report(result, err=True)
    else:
        _report(result, err=False)
    return 1 if result.conflicts else 0


def _report(result: UpdateResult, err: bool) -> None:
    def echo(line: str) -> None:
        click.echo(line, err=err)

    verb = "Updated" if result.written else "Would update"
    if not result.changes:
        echo(
            f"fleece update: {result.path} is current (fleece {result.to_version}, "
            f"template {result.template}); nothing to change."
        )
    else:
        echo(
            f"{verb} {result.path} from fleece {result.from_version} to "
            f"{result.to_version} (template {result.template}):"
        )
    fleece_dir = False
    for change in result.changes:
        if change.path.startswith(".fleece/"):
            fleece_dir = True
        else:
            echo(f"  {change.action:<9} {change.path}")
    if fleece_dir:
        echo("  refreshed .fleece/ (answers and pristine render)")
    for note in result.notes:
        echo(f"Note: {note}")
    if result.conflicts:
        count = len(result.conflicts)
        echo(
            f"{count} file{'s' if count > 1 else ''} with conflicts: resolve the "
            "<<<<<<< ======= >>>>>>> blocks, run `fleece check`, then commit:"
        )
        for path in result.conflicts:
            echo(f"  {path}")
    elif result.written and result.changes:
        echo("Review with `git diff`, then commit.")
