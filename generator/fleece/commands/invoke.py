"""``fleece invoke``: the command line of fleece.invoke."""

from pathlib import Path

import click

from fleece.commands import service_path
from fleece.invoke import InvokeRequest, invoke


@click.command("invoke")
@service_path
@click.option(
    "--event",
    metavar="FILE|-|NAME",
    help="The event: a JSON file, - for standard input, or a name in events/ "
    "(apigw_http_v2, sqs_receive, ...). Default: {}.",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable for the handler, over template.yaml's (repeatable).",
)
@click.option(
    "--function",
    "function",
    metavar="LOGICAL_ID",
    help="The function of template.yaml to invoke, when it declares several.",
)
def command(
    path: Path, event: str | None, env: tuple[str, ...], function: str | None
) -> int:
    """Invoke the handler of the service in PATH (default: .) once, as Lambda would.

    \b
    It runs in the service's own environment (its .venv, else the active one)
    with a Lambda context (request id, function name, memory, ARN, and a
    remaining time counting down from template.yaml's timeout) and the
    environment variables of template.yaml. The answer is printed as JSON on
    standard output, the handler's log on standard error. Exit 1 when the
    handler raises (its traceback logged as Lambda logs it) or times out.

    \b
    Examples:
      fleece invoke --event apigw_http_v2
      fleece invoke --event - --env LOG_LEVEL=DEBUG < event.json | jq .
    """
    return invoke(InvokeRequest(service=path, event=event, env=env, function=function))
