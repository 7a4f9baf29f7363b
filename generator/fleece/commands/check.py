"""``fleece check``: the command line of fleece.service.check."""

import json
from pathlib import Path

import click

from fleece import __version__
from fleece.commands import service_path
from fleece.service.check import check_service


@click.command("check")
@service_path
@click.option(
    "--template",
    "-t",
    default=None,
    metavar="NAME|PATH",
    help="Template the service was rendered from, when this fleece does not "
    "bundle it (as for fleece update).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"schema_version", "ok", "findings": [{"path", "kind", "message", '
    '"blocks_update"}]} instead.',
)
def command(path: Path, template: str | None, as_json: bool) -> int:
    """Check that the service in PATH (default: .) is current with this fleece.

    \b
    Exit 0 and one line when `fleece update` would change nothing and has
    nothing in its way. Otherwise exit 1 and one line per finding: what update
    would change (a stale runtime, template changes), what it would refuse on
    (a hand-edited runtime, conflict markers, a damaged .fleece/, a downgrade),
    and config modules that do not match config.yml. Offline and read-only:
    made for CI. Finding kinds: docs/update.md.
    """
    result = check_service(path, template)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    elif result.ok:
        click.echo(f"fleece check: {result.path} is current (fleece {__version__})")
    else:
        for finding in result.findings:
            click.echo(finding.line())
    return 0 if result.ok else 1
