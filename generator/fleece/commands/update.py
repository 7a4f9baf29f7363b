"""``fleece update``: the command line of fleece.service.update."""

from collections.abc import Callable
from pathlib import Path

import click

from fleece.commands import service_path
from fleece.service.update import (
    UpdateRefused,
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
    help="Print the unified diff of what would change, and anything update would "
    "refuse on; write nothing. Exit 2 if it would refuse, 1 if it would leave "
    "conflicts.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a hand-edited src/fleece_runtime.py or config stub "
    "(src/fleece_config.py before any `fleece config render`), saving your "
    "version beside it as FILE.orig.",
)
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="Render with this fleece (or template) although the service was "
    "rendered by a newer one, undoing the newer template's changes.",
)
@click.option(
    "--abort",
    is_flag=True,
    help="Roll back an interrupted update (killed while writing) instead of "
    "completing it.",
)
def command(
    path: Path,
    data: tuple[str, ...],
    template: str | None,
    pretend: bool,
    force: bool,
    allow_downgrade: bool,
    abort: bool,
) -> int:
    """Re-render the service in PATH (default: .) with this fleece, keeping your edits.

    \b
    Your files are merged three ways: the pristine render of the last update
    (.fleece/base.tar.bz2), your file, and the new render. Your edits stay,
    template changes arrive, real conflicts get git's <<<<<<< ======= >>>>>>>
    markers (exit 1 until resolved). src/fleece_runtime.py is replaced.
    Nothing is written outside PATH, nor through a link that leads out of it.
    Needs a clean git tree (except --pretend); review the result with
    `git diff`, then commit. An update killed while writing is completed by
    the next `fleece update` (or rolled back with --abort).

    \b
    Examples:
      fleece update
      fleece update --pretend
      fleece update --data api_style=router
    """
    request = UpdateRequest(
        path=path,
        data=data,
        template=template,
        pretend=pretend,
        force=force,
        allow_downgrade=allow_downgrade,
        abort=abort,
    )
    try:
        result = update_service(request)
    except UpdateRefused as error:
        click.echo(error.diff, nl=False)
        raise
    if pretend:
        click.echo(result.diff(), nl=False)
    _report(result, err=pretend)
    if result.refusals:
        return 2
    return 1 if result.conflicts else 0


def _report(result: UpdateResult, err: bool) -> None:
    def echo(line: str) -> None:
        click.echo(line, err=err)

    if result.recovery is not None:
        _report_recovery(result, echo)
        return
    would = not result.written
    if result.refusals:
        echo(f"fleece update would refuse to update {result.path}:")
        for refusal in result.refusals:
            echo(f"  {refusal}")
    if not result.changes:
        if not result.refusals:
            echo(
                f"fleece update: {result.path} is current (fleece {result.to_version}, "
                f"template {result.template}); nothing to change."
            )
    else:
        echo(
            f"{'Would update' if would else 'Updated'} {result.path} from fleece "
            f"{result.from_version} to {result.to_version} (template {result.template}):"
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


def _report_recovery(result: UpdateResult, echo: Callable[[str], None]) -> None:
    recovery = result.recovery
    assert recovery is not None
    total = len(recovery.journal.steps)
    what = (
        f"An update from fleece {result.from_version} to {result.to_version} was "
        f"interrupted after writing {recovery.written} of its {total} files."
    )
    if recovery.completed:
        done = "completed it" if result.written else "would complete it"
        echo(f"{what} fleece update {done}: the service is updated.")
        if result.written:
            echo("Review with `git diff` (and `fleece check`), then commit.")
    else:
        done = "rolled it back" if result.written else "would roll it back"
        echo(f"{what} fleece update --abort {done}: the service is as before it.")
