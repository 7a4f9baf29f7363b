"""``fleece run``: the command line of fleece.run."""

from pathlib import Path

import click

from fleece.run import RunRequest, run


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--username",
    "-u",
    help="Rackspace username. Default: the variable named by the environment's "
    "rs_username_var, else RS_USERNAME.",
)
@click.option(
    "--apikey",
    "-k",
    help="Rackspace API key. Default: the variable named by the environment's "
    "rs_apikey_var, else RS_API_KEY. Prefer the variables: flags show in `ps`.",
)
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("environments.yml"),
    show_default=True,
    help="The environments file.",
)
@click.option("--account", "-a", help="AWS account id (12 digits).")
@click.option("--environment", "-e", help="Environment name in the environments file.")
@click.option(
    "--stage",
    "-s",
    help="Stage; the file's stages: map (names or /regex/) gives its environment.",
)
@click.option(
    "--role",
    "-r",
    help="IAM role name (or ARN) to assume in the account; overrides the "
    "environment's role.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(
    username: str | None,
    apikey: str | None,
    config: Path,
    account: str | None,
    environment: str | None,
    stage: str | None,
    role: str | None,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND with the AWS credentials of an account, environment or stage.

    COMMAND runs without a shell and gets its arguments exactly as given; put
    `--` before it when it has options of its own. Its exit code is fleece's.

    \b
    Credentials: the environment's AWS profile (and role), else Rackspace FAWS
    temporary credentials for the account (and, with a role, an STS assume-role).

    \b
    Examples:
      fleece run -e dev -- aws s3 ls
      fleece run -s feature-42 -r DeployRole -- sam deploy
      fleece run -a 123456789012 -- sh -c 'echo $AWS_ACCESS_KEY_ID | cut -c1-4'
    """
    return run(
        RunRequest(
            command=command,
            username=username,
            api_key=apikey,
            config=config,
            account=account,
            environment=environment,
            stage=stage,
            role=role,
        )
    )
