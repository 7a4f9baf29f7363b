"""The ``fleece`` command line.

Each subcommand lives in ``fleece.commands.<name>`` as a click command called
``command`` and is imported only when it runs, so ``fleece --help`` stays fast
and one command's heavy imports (boto3, docker, copier) never slow another.
Commands are thin: they parse options, call one function that does the work and
print its result. Failures a user can cause are ``FleeceError``/``BadInput``;
here they become one line on stderr and exit 1/2 (``--debug``: the traceback).
"""

import importlib
import importlib.util
import sys
import traceback
from typing import Any, NoReturn

import click

from fleece import __version__
from fleece.errors import FleeceError

# Command name -> one-line summary shown by `fleece --help` without importing it.
_COMMANDS = {
    "new": "Create a new Lambda service from a bundled template.",
    "update": "Re-render a service after fleece or its answers changed, keeping edits.",
    "check": "Tell CI whether a service's generated files are current.",
    "config": "Manage the KMS-encrypted configuration of a service.",
    "build": "Build the deployment zip of a service.",
    "run": "Run a command with the AWS credentials of an environment.",
    "invoke": "Invoke a service's handler once, locally, as Lambda would.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _COMMANDS if importlib.util.find_spec(_module(name))]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.list_commands(ctx):
            return None
        command = importlib.import_module(_module(cmd_name)).command
        assert isinstance(command, click.Command)
        return command

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        rows = [(name, _COMMANDS[name]) for name in self.list_commands(ctx)]
        if not rows:
            return
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _module(name: str) -> str:
    return f"fleece.commands.{name}"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="fleece")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """fleece: write, ship and keep up to date Python services on AWS Lambda.

    Start with `fleece new my-service`; see `fleece COMMAND --help` for each command.
    """
    ctx.obj = {"debug": debug}


def _wants_debug(args: list[str]) -> bool:
    # Only fleece's own options count: `fleece run -- aws s3 ls --debug` passes
    # --debug to the command, and leaves fleece's error output alone.
    for arg in args:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            return False  # the subcommand: what follows is its arguments
    return False


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``fleece`` console script."""
    debug = _wants_debug(sys.argv[1:] if argv is None else argv)
    try:
        result: Any = cli.main(args=argv, prog_name="fleece", standalone_mode=False)
    except FleeceError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
