"""``fleece check``: the command line of fleece.check."""

import json
from pathlib import Path

import click

from fleece import __version__
from fleece.commands import service_path
from fleece.service.check import check_service


@click.command("check")
@service_path
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"ok": bool, "findings": [{"path", "kind", "message"}]} instead.',
)
def command(path: Path, as_json: bool) -> int:
    """Check that the generated files of the service in PATH (default: .) are current.

    \b
    Exit 1 with one line per finding when src/fleece_runtime.py is older than
    this fleece or edited by hand, a fleece_config.py does not match config.yml
    or was edited, conflict markers from `fleece update` remain, or
    .fleece/answers.yml is missing. Exit 0 when all is current. Offline,
    read-only: made for CI.
    """
    result = check_service(path)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    elif result.ok:
        click.echo(f"fleece check: {result.path} is current (fleece {__version__})")
    else:
        for finding in result.findings:
            click.echo(finding.line())
    return 0 if result.ok else 1
