"""The subcommands of ``fleece``, one module each (see ``fleece.cli``)."""

from pathlib import Path

import click

# The PATH argument of the commands that work on a service: its root folder.
service_path = click.argument(
    "path",
    required=False,
    default=".",
    type=click.Path(path_type=Path, file_okay=False),
)
